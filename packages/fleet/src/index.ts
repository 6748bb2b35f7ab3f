/**
 * @gatehouse/fleet: real gateway processes behind a TCP balancer, SDK clients, a steady publisher
 * and an accountant, for the multi-node suite and the fault drills.
 */
export { account, reconnectTimes } from './accountant.js';
export type { AccountInput, ClientEvent, ClientLog, Figures, Incident, LossSample, SentRecord } from './accountant.js';
export { Balancer } from './balancer.js';
export type { BalancerStats, Upstream } from './balancer.js';
export { ClientPool, RecordingClient } from './clients.js';
export type { ClientPoolOptions, Payload, RecordingClientOptions } from './clients.js';
export { backboneKind, connectDirectPublisher, isSequenced } from './direct.js';
export type { DirectPublisher, Retention } from './direct.js';
export { Fleet, NAMESPACE } from './fleet.js';
export type { FleetOptions } from './fleet.js';
export { GATEHOUSE_BIN, GatewayNode, parseMetrics } from './node.js';
export type { NodeSpec } from './node.js';
export { SteadyPublisher, directRoute, httpRoute } from './publisher.js';
export type { Route, SteadyPublisherOptions } from './publisher.js';
export { backboneRestart, killOne, rollingRestart, runScenario, steady } from './scenarios.js';
export type { Fault, FaultContext, FaultOutcome, LoadOptions, ScenarioReport, ScenarioResult } from './scenarios.js';
export { privateServerUnavailable, startPrivateServer } from './servers.js';
export type { PrivateServer } from './servers.js';
export { percentiles } from './stats.js';
export type { Percentiles } from './stats.js';
export { ADMISSION_OFF, runStorm } from './storm.js';
export type { StormOptions, StormReport } from './storm.js';
export { DRILLS, DRILL_USAGE, DrillUsageError, fleetViolations, runDrill, stormViolations } from './drills.js';
export type { DrillName } from './drills.js';
