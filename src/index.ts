export { Switchyard, type BoundAddress } from './server/switchyard.js';
export { withDefaults, DEFAULTS, type SwitchyardConfig, type SwitchyardConfigInput } from './config/model.js';
export { ProxyError, ERROR_CODES, type ErrorCode } from './errors.js';
export { createLogger, silentLogger } from './log/logger.js';
export { startDemoOrigin } from './demo/demo-origin.js';
