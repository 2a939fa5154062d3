/**
 * Technique 5's exit-routing map and the transition edges it decides between.
 *
 * Routable exits have a key: MMIO by device range of the device region (platform.ts) and the SBI
 * hypercall. With the technique on and the key routed to 'uhv', the exit goes guest -> UHV and
 * the UHV returns guest-ward directly (2 transitions, COSTS.vmExit); otherwise a UHV exit is the
 * baseline guest -> KHV -> UHV -> KHV -> guest (4 transitions, COSTS.vmExit +
 * COSTS.khvUhvRoundTrip). KHV exits (demand allocation, dirty logging, wfi, memory errors) are
 * never routable. Only the KHV builds or changes this map (Khv.setTechnique).
 */
import { UHV_ROUTABLE_EXITS } from '../techniques/catalogue.js';
import { BLOCK_OFFSET, BLOCK_STRIDE, CONSOLE_OFFSET, MAX_DISKS, POWER_OFFSET } from './platform.js';

/** Transition edges, counted separately (VmCounters.uhv.transitionsByEdge). */
export const EDGE = { GuestKhv: 0, KhvGuest: 1, KhvUhv: 2, UhvKhv: 3, GuestUhv: 4, UhvGuest: 5 } as const;
export const EDGE_NAMES = ['guest->khv', 'khv->guest', 'khv->uhv', 'uhv->khv', 'guest->uhv', 'uhv->guest'] as const;

/** Routable exit keys by index (the catalogue's exitRouting keys). */
export const ROUTE_KEYS: readonly string[] = UHV_ROUTABLE_EXITS;
export const ROUTE = Object.fromEntries(ROUTE_KEYS.map((k, i) => [k, i])) as Record<(typeof UHV_ROUTABLE_EXITS)[number], number>;

/** Device ranges of the device region (offsets from DEVICE_BASE, end exclusive) and their routing keys. */
export const DEVICE_RANGES: ReadonlyArray<{ readonly start: number; readonly end: number; readonly route: number }> = [
  { start: CONSOLE_OFFSET, end: CONSOLE_OFFSET + 0x1000, route: ROUTE['mmio.console'] },
  { start: POWER_OFFSET, end: POWER_OFFSET + 0x1000, route: ROUTE['mmio.power'] },
  { start: BLOCK_OFFSET, end: BLOCK_OFFSET + MAX_DISKS * BLOCK_STRIDE, route: ROUTE['mmio.block'] },
];

/** The routing key of device-region offset `offset`, or -1 for an offset in no device range (goes through the KHV). */
export function deviceRoute(offset: number): number {
  for (const r of DEVICE_RANGES) if (offset >= r.start && offset < r.end) return r.route;
  return -1;
}

/** Per routing key: 1 = straight to the UHV. From a catalogue-validated `{key: 'uhv'|'khv'}`; absent keys go through the KHV. */
export function routingBits(config: Readonly<Record<string, string>> | undefined): Uint8Array {
  const bits = new Uint8Array(ROUTE_KEYS.length);
  for (const [key, to] of Object.entries(config ?? {})) {
    const i = ROUTE_KEYS.indexOf(key);
    if (i < 0) throw new RangeError(`exit ${key} cannot be routed`);
    bits[i] = to === 'uhv' ? 1 : 0;
  }
  return bits;
}
