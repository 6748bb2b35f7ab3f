/**
 * The conformance suite against the embedded backbone: two MemoryBackbones on one MemoryBus are
 * the in-process "two nodes" (memory is not shared across processes).
 */
import { MemoryBackbone, MemoryBus } from '@gatehouse/server';
import { runBackboneConformance } from '../src/index.js';

runBackboneConformance('memory', async () => {
  const bus = new MemoryBus();
  return {
    a: new MemoryBackbone({ bus }),
    b: new MemoryBackbone({ bus }),
    cleanup: async () => bus.stop(),
  };
});
