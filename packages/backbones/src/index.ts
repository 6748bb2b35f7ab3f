/**
 * @gatehouse/backbones: the backbone registry. `createBackbone(urls, options)` builds the adapter
 * a backbone URL names with every one of its settings; `backboneNames` gives a fleet its own names
 * on shared backbone servers; `BACKBONE_SETTINGS` lists every adapter setting with its default.
 */
export { backboneKind, backboneKindOf, backboneNames, checkBackboneNamespace, type BackboneKind, type BackboneNames } from './names.js';
export {
  BACKBONE_SETTINGS,
  applyBackboneOption,
  checkSection,
  checkSettings,
  isSectionName,
  type BackboneSettings,
  type JetStreamSettings,
  type KafkaSettings,
  type NatsSettings,
  type RedisSettings,
  type SectionName,
  type SettingKind,
  type SettingSpec,
} from './settings.js';
export { createBackbone, planBackbone, type BackboneOptions, type BackbonePlan } from './create.js';
