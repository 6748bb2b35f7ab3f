/*
 * gatehouse_send: one call that writes the same bytes to many sockets.
 *
 * A fan-out pass writes one buffer to thousands of sockets. Through net.Socket each of those is a
 * JavaScript call into Node's stream machinery, a write request object and a call into libuv,
 * which together cost about as much user-space CPU as the kernel's own work for a small loopback
 * write. This module takes the file descriptors of a run of sockets and the bytes, and makes the
 * send(2) calls in one loop.
 *
 * It never queues and never blocks: each send is non-blocking, and whatever the kernel did not
 * take (a full send buffer, an error) is reported per socket so that the caller hands the rest to
 * the socket's own write path, which queues it in order and surfaces errors the usual way. The
 * caller passes only descriptors of open sockets with nothing waiting in their write queue.
 *
 * Node-API only (ABI-stable): one build loads on every Node version the project supports.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifndef MSG_NOSIGNAL
#define MSG_NOSIGNAL 0 /* Node ignores SIGPIPE itself; the flag only spares the signal. */
#endif

static napi_value fail(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

static int int32_array(napi_env env, napi_value value, int32_t **data, size_t *length) {
  bool is_typed = false;
  napi_typedarray_type type;
  void *raw = NULL;
  if (napi_is_typedarray(env, value, &is_typed) != napi_ok || !is_typed) return 0;
  if (napi_get_typedarray_info(env, value, &type, length, &raw, NULL, NULL) != napi_ok) return 0;
  if (type != napi_int32_array) return 0;
  *data = (int32_t *)raw;
  return 1;
}

/*
 * sendEach(fds: Int32Array, count: number, bytes: Uint8Array, results: Int32Array): number
 *
 * Sends all of `bytes` to each of the first `count` descriptors in `fds`. results[i] is the number
 * of bytes the kernel took (bytes.length when all of it) or -errno; a negative descriptor is
 * skipped with -EBADF. Returns how many took it all.
 */
static napi_value send_each(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4)
    return fail(env, "sendEach(fds, count, bytes, results): four arguments");

  int32_t *fds, *results;
  size_t fds_length, results_length;
  if (!int32_array(env, argv[0], &fds, &fds_length)) return fail(env, "sendEach: fds must be an Int32Array");
  if (!int32_array(env, argv[3], &results, &results_length))
    return fail(env, "sendEach: results must be an Int32Array");

  uint32_t count = 0;
  if (napi_get_value_uint32(env, argv[1], &count) != napi_ok) return fail(env, "sendEach: count must be a number");
  if (count > fds_length || count > results_length)
    return fail(env, "sendEach: count is larger than fds or results");

  bool is_typed = false;
  napi_typedarray_type type;
  size_t length = 0;
  void *bytes = NULL;
  if (napi_is_typedarray(env, argv[2], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[2], &type, &length, &bytes, NULL, NULL) != napi_ok || type != napi_uint8_array)
    return fail(env, "sendEach: bytes must be a Buffer or Uint8Array");
  if (length > INT32_MAX) return fail(env, "sendEach: bytes is larger than 2 GiB");

  uint32_t complete = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (fds[i] < 0) {
      results[i] = -EBADF; /* the caller's mark for a socket to leave to its own write path */
      continue;
    }
    ssize_t sent;
    do {
      sent = send(fds[i], bytes, length, MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (sent < 0 && errno == EINTR);
    if (sent < 0) {
      results[i] = -errno;
    } else {
      results[i] = (int32_t)sent;
      if ((size_t)sent == length) complete++;
    }
  }

  napi_value out;
  napi_create_uint32(env, complete, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "sendEach", NAPI_AUTO_LENGTH, send_each, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sendEach", fn) != napi_ok) return NULL;
  return exports;
}
