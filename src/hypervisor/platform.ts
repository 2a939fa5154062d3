/**
 * The guest-physical platform every hvsim VM sees (like QEMU's `virt` board, smaller):
 *
 *   GPA 0x1000_0000  device region (never mapped in the G-stage: every access is a VM exit)
 *        +0x0000       console: DOORBELL (write: bit p = flush port p's ring)
 *        +0x1000       power: write 0x5555 = power off (the values of QEMU's sifive_test finisher)
 *        +0x2000       virtio-mmio block devices, one per disk, BLOCK_STRIDE apart (virtio-blk.ts)
 *        +0x1_0000     privileged-mode doorbell (technique 6): write n = the privileged-mode
 *                      interrupt to vCPU n; read = 1 + the vCPU in the mode, or 0
 *   GPA 0x1080_0000  the privileged-mode region (technique 6): mapped in the G-stage only while a
 *                    vCPU is in the privileged mode (hypervisor/privileged-mode.ts)
 *   GPA 0x8000_0000  guest RAM, memoryMiB long, backed by host frames on first touch
 *
 * The console rings live in guest RAM at fixed places (CONSOLE_RING_BASE, inside what the guest
 * kernel uses as its kernel region), which both the guest kernel and the UHV's console model know
 * from this platform definition, as a guest knows its device tree. The guest imports this module;
 * nothing in src/hypervisor imports the guest.
 */
export const DEVICE_BASE = 0x1000_0000;
export const DEVICE_SIZE = 0x0040_0000;
export const CONSOLE_OFFSET = 0x0000;
export const POWER_OFFSET = 0x1000;
export const POWER_OFF = 0x5555;
export const POWER_FAIL = 0x3333;
/** virtio-mmio block device n (the VM's disk n) is at BLOCK_OFFSET + n * BLOCK_STRIDE. */
export const BLOCK_OFFSET = 0x2000;
export const BLOCK_STRIDE = 0x1000;
export const MAX_DISKS = 8;

/** After the block devices' range (BLOCK_OFFSET + MAX_DISKS * BLOCK_STRIDE), with room for more. */
export const PM_DOORBELL_OFFSET = 0x1_0000;

/** The privileged-mode region: handler code (page 0) and its data (page 1: save area, counter, sealed key). */
export const PM_REGION_BASE = 0x1080_0000;
export const PM_REGION_PAGES = 2;

export const RAM_BASE = 0x8000_0000;

/** SBI extension ids of the hypercalls the KHV implements (RISC-V SBI spec v2.0). */
export const SBI = {
  /** TIME extension: set_timer(stime_value lo, hi) = fid 0. */
  TIME: 0x54494d45,
  /** System reset extension: system_reset(type, reason) = fid 0. */
  SRST: 0x53525354,
  /**
   * hvsim's privileged-mode service (technique 6), in the SBI vendor-specific space
   * (0x0900_0000-0x09ff_ffff): enters the privileged mode, whose handler serves function a6
   * (PM_FN) with argument a0 and returns SBI's (error a0, value a1).
   */
  PMODE: 0x0948_504d,
} as const;
export const SBI_ERR_NOT_SUPPORTED = -2;
/** SBI_ERR_ALREADY_STARTED: a privileged-mode hypercall from a vCPU that is already in the mode. */
export const SBI_ERR_ALREADY_STARTED = -7;

/** Functions of the SBI.PMODE hypercall (the built-in handler's ABI: docs/techniques/global-view.md). */
export const PM_FN = {
  /** Increments the protected monotonic counter; value = the new count. */
  COUNTER_INCREMENT: 0,
  /** value = the protected counter. */
  COUNTER_READ: 1,
  /** value = a MAC of the 32-bit argument under the sealed key (the key never leaves the region). */
  SEAL: 2,
} as const;

/** Console ports: 0 = the guest's stdout, 1 = its stderr. */
export const CONSOLE_PORTS = 2;

/**
 * Console rings, one per port, in guest RAM: port p's ring is at ringGpa(p). Layout: head (u32,
 * advanced by the guest, the producer), tail (u32, advanced by the UHV, the consumer), 8 bytes
 * reserved, then RING_DATA bytes used modulo RING_DATA.
 */
export const CONSOLE_RING_BASE = RAM_BASE + 0x1_0000;
export const CONSOLE_RING_STRIDE = 0x1_0000;
export const RING_HEADER = 16;
export const RING_DATA = CONSOLE_RING_STRIDE - RING_HEADER;
export const ringGpa = (port: number): number => CONSOLE_RING_BASE + port * CONSOLE_RING_STRIDE;
