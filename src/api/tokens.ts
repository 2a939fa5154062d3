/** Injection token of the resolved service configuration. */
export const CONFIG = Symbol('hvsim.config');
