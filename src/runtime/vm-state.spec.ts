import { allowedActions, isQuiescent, transition, TransitionError, VM_ACTIONS, VM_STATES } from './vm-state.js';

describe('VM state machine', () => {
  test('the lifecycle path and its exits', () => {
    let s = transition('created', 'start');
    s = transition(s, 'started');
    s = transition(s, 'pause');
    expect(s).toBe('paused');
    s = transition(transition(s, 'resume'), 'stop');
    expect(transition(s, 'stopped')).toBe('stopped');
    expect(transition('stopped', 'reset')).toBe('created');
    expect(transition('running', 'migrate')).toBe('migrating');
    expect(transition('migrating', 'migrated')).toBe('running');
  });

  test('every disallowed pair raises TransitionError naming both', () => {
    for (const s of VM_STATES) {
      for (const a of VM_ACTIONS) {
        if (allowedActions(s).includes(a)) { expect(VM_STATES).toContain(transition(s, a)); continue; }
        expect(() => transition(s, a)).toThrow(TransitionError);
        expect(() => transition(s, a)).toThrow(`cannot ${a} a VM that is ${s}`);
      }
    }
  });

  test('every state is reachable from created and every non-final state can crash or stop', () => {
    const seen = new Set(['created']);
    for (let changed = true; changed;) {
      changed = false;
      for (const s of [...seen]) for (const a of allowedActions(s as never)) {
        const t = transition(s as never, a);
        if (!seen.has(t)) { seen.add(t); changed = true; }
      }
    }
    expect([...seen].sort()).toEqual([...VM_STATES].sort());
    expect(VM_STATES.filter(isQuiescent)).toEqual(['created', 'stopped', 'crashed']);
  });
});
