/**
 * The control-plane suite against the embedded backbone: one MemoryBus is one fleet. Run with
 * records kept and with none kept (`keepRecords: false`, how NATS core behaves), so both branches
 * of the suite run on every build, with no server needed.
 */
import { MemoryBackbone, MemoryBus } from '@gatehouse/server';
import { runControlConformance } from '../src/index.js';

for (const keepRecords of [true, false]) {
  runControlConformance(keepRecords ? 'memory' : 'memory (no records kept)', async () => {
    const bus = new MemoryBus();
    return { node: () => new MemoryBackbone({ bus, keepRecords }), cleanup: async () => bus.stop() };
  });
}
