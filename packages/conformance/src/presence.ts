/**
 * Presence over the control plane, on every adapter: PresenceBooks (backbone-kit) wired to real
 * backbone nodes of one fleet. What presence needs from the control plane, shown end to end:
 * members reach every node, a lease larger than one control message arrives whole at a node that
 * started later, and a node that stops without a word loses each of its members exactly once
 * when its lease runs out.
 *
 * Every wait has a deadline and waits for the state it means; nothing sleeps except the one wait
 * that proves nothing more happens (two more lease windows).
 */
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { PresenceBook, type Backbone, type PresenceChange } from '@gatehouse/backbone-kit';
import { waitFor, withDeadline } from '@gatehouse/testkit';
import type { ControlFleet, ControlFleetFactory } from './control.js';
import type { ConformanceOptions } from './index.js';

/** Lease interval the books use here, ms (ttl 2.5 times that). */
const INTERVAL_MS = 200;

/** A presence node: a backbone node of the fleet and the book wired to it. */
interface PresenceNode {
  readonly name: string;
  readonly backbone: Backbone;
  readonly book: PresenceBook;
  readonly changes: PresenceChange[];
}

async function startNode(fleet: ControlFleet, name: string, timeoutMs: number): Promise<PresenceNode> {
  const backbone = fleet.node();
  const changes: PresenceChange[] = [];
  const book = new PresenceBook({
    node: name,
    intervalMs: INTERVAL_MS,
    send: (type, data) => backbone.sendControl({ type, from: name, data }),
  });
  book.onChange((c) => changes.push(c));
  await withDeadline(
    `presence node ${name} to start`,
    backbone.start({ onPublication: () => {}, onStateChange: () => {}, onControl: (msg) => book.onControl(msg) }),
    timeoutMs,
  );
  book.start();
  return { name, backbone, book, changes };
}

/** Registers the presence cases for one adapter (called by `runControlConformance`). */
export function runPresenceConformance(name: string, factory: ControlFleetFactory, options: ConformanceOptions = {}): void {
  const timeoutMs = Math.max(options.timeoutMs ?? 10_000, 10_000);
  describe(`presence conformance: ${name}`, { skip: options.skip ?? false }, () => {
    const run = randomBytes(4).toString('hex');
    const nodes: PresenceNode[] = [];
    let fleet: ControlFleet;
    let one: PresenceNode;
    let two: PresenceNode;

    before(async () => {
      fleet = await factory();
      [one, two] = await Promise.all([startNode(fleet, `p1-${run}`, timeoutMs), startNode(fleet, `p2-${run}`, timeoutMs)]);
      nodes.push(one, two);
    });

    after(async () => {
      for (const n of nodes) n.book.stop();
      await Promise.allSettled(nodes.map((n) => n.backbone.close()));
      await fleet?.cleanup();
    });

    test('members joined on either node appear on both; a leave is seen once', async () => {
      const ch = `room:${run}-basic`;
      for (let i = 0; i < 3; i++) one.book.join(ch, { client: `${one.name}-c${i}`, user: `u${i}`, info: { i } });
      two.book.join(ch, { client: `${two.name}-c0`, user: 'u0' });
      for (const n of [one, two]) {
        await waitFor(`${n.name} to hold 4 members`, () => (n.book.members(ch).length === 4 ? true : undefined), timeoutMs);
        assert.deepEqual(n.book.stats(ch), { clients: 4, users: 3 }, `${n.name}: u0 has two connections, one user`);
      }
      one.book.leave(ch, `${one.name}-c1`);
      await waitFor('node two to see the leave', () => (two.book.members(ch).length === 3 ? true : undefined), timeoutMs);
      // Two more lease windows: the leases that follow agree, nothing comes back or leaves twice.
      await new Promise<void>((r) => setTimeout(r, 2 * one.book.ttlMs));
      const seen = two.changes.filter((c) => c.channel === ch && c.member.client === `${one.name}-c1`).map((c) => c.kind);
      assert.deepEqual(seen, ['join', 'leave']);
      assert.deepEqual(
        two.book.members(ch).find((m) => m.client === `${one.name}-c0`),
        { client: `${one.name}-c0`, user: 'u0', info: { i: 0 } },
      );
    });

    test('a node that starts later learns a state larger than one control message from the leases', async () => {
      const ch = `room:${run}-big`;
      const n = 3000;
      for (let i = 0; i < n; i++)
        one.book.join(ch, { client: `${one.name}-big-${i}`, user: `user-${i}`, info: { name: `member number ${i}` } });
      const late = await startNode(fleet, `p3-${run}`, timeoutMs);
      nodes.push(late);
      await waitFor(`the late node to hold all ${n} members`, () => (late.book.members(ch).length === n ? true : undefined), timeoutMs);
      assert.deepEqual(late.book.stats(ch), { clients: n, users: n });
      late.book.stop();
      await late.backbone.close();
    });

    test('a node that stops without a word: each of its members leaves exactly once when its lease runs out', async () => {
      const ch = `room:${run}-crash`;
      const gone = await startNode(fleet, `p4-${run}`, timeoutMs);
      nodes.push(gone);
      for (let i = 0; i < 5; i++) gone.book.join(ch, { client: `${gone.name}-c${i}`, user: `crash-${i}` });
      await waitFor('node one to hold the members', () => (one.book.members(ch).length === 5 ? true : undefined), timeoutMs);
      // The crash: the connection goes first, so no leave and no lease ever leaves the node.
      await gone.backbone.close();
      gone.book.stop();
      await waitFor('node one to drop every member', () => (one.book.members(ch).length === 0 ? true : undefined), timeoutMs);
      await new Promise<void>((r) => setTimeout(r, 2 * one.book.ttlMs));
      for (const n of [one, two]) {
        const leaves = n.changes.filter((c) => c.channel === ch && c.kind === 'leave');
        assert.equal(leaves.length, 5, `${n.name}: one leave per member`);
        assert.equal(new Set(leaves.map((c) => c.member.client)).size, 5, `${n.name}: no member left twice`);
        assert.deepEqual(n.book.stats(ch), { clients: 0, users: 0 }, `${n.name}: no ghost`);
      }
    });
  });
}
