/** FUSE transport: mount any FileService (the global view, an agent's view) as a real filesystem. */
export {
  mountNamespace,
  unmountAll,
  unmountOnSignals,
  activeMounts,
  clearStaleMount,
  fuseUnavailableReason,
  mountOptionList,
  FuseUnavailableError,
  type FuseMount,
  type MountNamespaceOptions,
} from './kernel-mount.js';
export { FuseAdapter, type AdapterOptions } from './adapter.js';
export { mountServer, agentRootEnv, agentPrincipal, type MountServerOptions } from './mount-server.js';
