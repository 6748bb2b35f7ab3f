/**
 * A throwaway broker for the tests that kill and restart one (testkit's PrivateKafka, probed with
 * this package's client), and the rig the outage tests share on it.
 */
import { Admin } from '@platformatic/kafka';
import { PrivateKafka, privateKafkaUnavailable, type TcpRelay } from '@gatehouse/testkit';
import { createKafkaBackbone, type KafkaBackbone } from '../src/index.js';
import { Recorder } from './support.js';

/** True when a private broker can be started here (Java and the fetched classpath exist). */
export function privateBrokerAvailable(): boolean {
  return privateKafkaUnavailable() === undefined;
}

/** True once the broker at `address` answers a metadata request. */
async function answers(address: string): Promise<boolean> {
  const admin = new Admin({
    clientId: 'gatehouse-test-ready',
    bootstrapBrokers: [address],
    retries: 0,
    timeout: 2000,
    connectTimeout: 1000,
  });
  try {
    return (await admin.metadata({ topics: [] })).brokers.size > 0;
  } catch {
    return false;
  } finally {
    await admin.close().catch(() => {});
  }
}

/**
 * A private broker with two backbones on it, a publisher and a subscriber, tuned to notice a lost
 * broker and come back quickly: what the outage tests share.
 */
export class BrokerRig {
  readonly recPub = new Recorder();
  readonly recSub = new Recorder();
  private constructor(
    readonly broker: PrivateKafka,
    readonly pub: KafkaBackbone,
    readonly sub: KafkaBackbone,
  ) {}

  /** `relay`: the broker advertises it, so every client connection goes through it. */
  static async start(opts: { topic: string; partitions: number; requestTimeoutMs: number }, relay?: TcpRelay): Promise<BrokerRig> {
    const broker = await PrivateKafka.create({ answers, ...(relay ? { advertisedPort: relay.port } : {}) });
    if (relay) relay.target = broker.port;
    const o = { ...opts, fetchMaxWaitMs: 200, reconnectMinMs: 50, reconnectMaxMs: 500 };
    const rig = new BrokerRig(broker, createKafkaBackbone([broker.address], o), createKafkaBackbone([broker.address], o));
    await Promise.all([rig.pub.start(rig.recPub), rig.sub.start(rig.recSub)]).catch(async (err: unknown) => {
      await rig.close();
      throw err;
    });
    return rig;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.pub.close(), this.sub.close()]);
    await this.broker.destroy();
  }
}
