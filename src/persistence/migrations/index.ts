import { Initial1764000000001 } from './0001-initial.js';
import { ImagesVmsOperations1764000000002 } from './0002-images-vms-operations.js';

/** Every migration, oldest first. They run at start-up; the schema is never synchronized. */
export const MIGRATIONS = [Initial1764000000001, ImagesVmsOperations1764000000002];
