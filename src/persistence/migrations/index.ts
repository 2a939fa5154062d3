import { Initial1764000000001 } from './0001-initial.js';
import { ImagesVmsOperations1764000000002 } from './0002-images-vms-operations.js';
import { BuiltinImages1764000000003 } from './0003-builtin-images.js';
import { VmRuns1764000000004 } from './0004-vm-runs.js';
import { Experiments1764000000005 } from './0005-experiments.js';
import { MemoryErrors1764000000006 } from './0006-memory-errors.js';
import { VmMigrations1764000000007 } from './0007-migrations.js';
import { ProtectionDomains1764000000110 } from './0110-protection-domains.js';
import { VmDisks1764000000120 } from './0120-disks.js';
import { Cluster1764000000130 } from './0130-cluster.js';
import { VmDiskContents1764000000140 } from './0140-disk-contents.js';

/** Every migration, oldest first. They run at start-up; the schema is never synchronized. */
export const MIGRATIONS = [Initial1764000000001, ImagesVmsOperations1764000000002, BuiltinImages1764000000003, VmRuns1764000000004, Experiments1764000000005, MemoryErrors1764000000006, VmMigrations1764000000007, ProtectionDomains1764000000110, VmDisks1764000000120, Cluster1764000000130, VmDiskContents1764000000140];
