/**
 * The VM state machine, enforced here and only here.
 *
 *              start            (worker up)          pause
 *   created ----------> starting ----------> running ------> paused
 *      ^                   |                  |  ^  <------    |
 *      |                   |                  |  |   resume    |
 *      |                   |            stop  |  | migrate     | stop
 *      |                   |                  v  |  done       v
 *      |                   +-------------> stopping <----------+
 *      |                 (fails)              |            migrating <- running (migrate)
 *      |                                      v
 *      +---------------- reset --------- stopped
 *
 *   any state but created/stopped --(worker or host failure)--> crashed --reset--> created
 *   migrating --(migrated | migration-failed)--> running; migrating --(the guest powers off)--> stopped
 *   starting | running | paused | stopping | migrating --lost--> stopped   (the service went away with the worker)
 *
 * Every write of a VM row's state goes through `transition` (RuntimeService.recordTransition).
 */
export const VM_STATES = ['created', 'starting', 'running', 'paused', 'stopping', 'stopped', 'crashed', 'migrating'] as const;
export type VmState = (typeof VM_STATES)[number];

export const VM_ACTIONS = ['start', 'started', 'pause', 'resume', 'stop', 'stopped', 'crash', 'migrate', 'migrated', 'migration-failed', 'reset', 'lost'] as const;
export type VmAction = (typeof VM_ACTIONS)[number];

/** from -> action -> to. Actions not listed for a state are not allowed in it. */
const TRANSITIONS: Record<VmState, Partial<Record<VmAction, VmState>>> = {
  created: { start: 'starting' },
  starting: { started: 'running', stop: 'stopping', crash: 'crashed', lost: 'stopped' },
  running: { pause: 'paused', stop: 'stopping', stopped: 'stopped', crash: 'crashed', migrate: 'migrating', lost: 'stopped' },
  paused: { resume: 'running', stop: 'stopping', crash: 'crashed', lost: 'stopped' },
  stopping: { stopped: 'stopped', crash: 'crashed', lost: 'stopped' },
  stopped: { reset: 'created', start: 'starting' },
  crashed: { reset: 'created' },
  migrating: { migrated: 'running', 'migration-failed': 'running', stopped: 'stopped', crash: 'crashed', lost: 'stopped' },
};

export class TransitionError extends Error {
  constructor(readonly from: VmState, readonly action: VmAction) {
    super(`cannot ${action} a VM that is ${from}`);
  }
}

/** The state after `action`. Raises: TransitionError when the action is not allowed in `from`. */
export function transition(from: VmState, action: VmAction): VmState {
  const to = TRANSITIONS[from][action];
  if (to === undefined) throw new TransitionError(from, action);
  return to;
}

/** Actions allowed in a state (for error messages and docs). */
export const allowedActions = (s: VmState): VmAction[] => Object.keys(TRANSITIONS[s]) as VmAction[];

/** States in which a VM definition may be edited or deleted. */
export const isQuiescent = (s: VmState): boolean => s === 'created' || s === 'stopped' || s === 'crashed';
