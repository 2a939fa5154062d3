/**
 * Expressions of the assembler: integer literals (decimal, 0x, 0b, 0 octal, 'c'), symbols,
 * `.`, numeric local label references (1b, 1f), unary - ~ +, binary * / % << >> & ^ | + -,
 * parentheses, and the relocation functions %hi %lo %pcrel_hi %pcrel_lo.
 */

export type Expr =
  | { k: 'num'; v: number }
  | { k: 'sym'; name: string }
  | { k: 'dot' }
  | { k: 'local'; n: number; dir: 'b' | 'f' }
  | { k: 'un'; op: string; e: Expr }
  | { k: 'bin'; op: string; a: Expr; b: Expr }
  | { k: 'fn'; fn: 'hi' | 'lo' | 'pcrel_hi' | 'pcrel_lo'; e: Expr };

export class ExprError extends Error {
  constructor(message: string, readonly column: number) { super(message); }
}

const PREC: Record<string, number> = { '|': 1, '^': 2, '&': 3, '<<': 4, '>>': 4, '+': 5, '-': 5, '*': 6, '/': 6, '%': 6 };

/** Parses one expression from `s` starting at `pos`; returns the expression and the end index. */
export function parseExpr(s: string, pos = 0, base = 0): { e: Expr; end: number } {
  let i = pos;
  const ws = () => { while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++; };
  const fail = (m: string): never => { throw new ExprError(m, base + i + 1); };

  function primary(): Expr {
    ws();
    const c = s[i];
    if (c === undefined) fail('expected an expression');
    if (c === '(') { i++; const e = binary(0); ws(); if (s[i] !== ')') fail('expected )'); i++; return e; }
    if (c === '-' || c === '~' || c === '+') { i++; return { k: 'un', op: c, e: primary() }; }
    if (c === '%') {
      const m = /^%(pcrel_hi|pcrel_lo|hi|lo)\s*\(/.exec(s.slice(i));
      if (!m) fail('unknown relocation function');
      i += m![0].length;
      const e = binary(0);
      ws();
      if (s[i] !== ')') fail('expected )');
      i++;
      return { k: 'fn', fn: m![1] as 'hi', e };
    }
    if (c === "'") {
      const m = /^'(\\.|[^\\'])'?/.exec(s.slice(i));
      if (!m) fail('bad character literal');
      i += m![0].length;
      const ch = m![1];
      const esc: Record<string, number> = { n: 10, t: 9, r: 13, '0': 0, '\\': 92, "'": 39, '"': 34 };
      return { k: 'num', v: ch.length === 2 ? (esc[ch[1]] ?? ch.charCodeAt(1)) : ch.charCodeAt(0) };
    }
    const num = /^(0[xX][0-9a-fA-F]+|0[bB][01]+|[0-9]+)([bf])?(?![\w$.])/.exec(s.slice(i));
    if (num) {
      i += num[0].length;
      if (num[2]) return { k: 'local', n: Number(num[1]), dir: num[2] as 'b' | 'f' };
      const t = num[1];
      const v = /^0[bB]/.test(t) ? parseInt(t.slice(2), 2) : /^0[0-7]+$/.test(t) ? parseInt(t, 8) : Number(t);
      return { k: 'num', v };
    }
    const sym = /^[A-Za-z_.$][\w.$]*/.exec(s.slice(i));
    if (sym) {
      i += sym[0].length;
      return sym[0] === '.' ? { k: 'dot' } : { k: 'sym', name: sym[0] };
    }
    return fail(`unexpected '${c}'`);
  }

  function binary(minPrec: number): Expr {
    let left = primary();
    for (;;) {
      ws();
      const op = s.startsWith('<<', i) ? '<<' : s.startsWith('>>', i) ? '>>' : s[i];
      const p = PREC[op];
      if (p === undefined || p < minPrec) return left;
      i += op.length;
      left = { k: 'bin', op, a: left, b: binary(p + 1) };
    }
  }

  const e = binary(0);
  ws();
  return { e, end: i };
}

/** Environment for evaluation. `symbol` returns undefined for an unknown symbol. */
export interface EvalEnv {
  dot: number;
  symbol(name: string): number | undefined;
  local(n: number, dir: 'b' | 'f'): number | undefined;
  /** For %pcrel_lo(label): the pc-relative target of the %pcrel_hi at `label`. */
  pcrelHiTarget(labelAddr: number): number | undefined;
}

export class UnresolvedError extends Error {}

/** Evaluates to a 32-bit integer (as a JS number). Raises UnresolvedError for unknown symbols. */
export function evaluate(e: Expr, env: EvalEnv): number {
  switch (e.k) {
    case 'num': return e.v;
    case 'dot': return env.dot;
    case 'sym': {
      const v = env.symbol(e.name);
      if (v === undefined) throw new UnresolvedError(`undefined symbol '${e.name}'`);
      return v;
    }
    case 'local': {
      const v = env.local(e.n, e.dir);
      if (v === undefined) throw new UnresolvedError(`undefined local label ${e.n}${e.dir}`);
      return v;
    }
    case 'un': {
      const v = evaluate(e.e, env);
      return e.op === '-' ? -v : e.op === '~' ? ~v : v;
    }
    case 'bin': {
      const a = evaluate(e.a, env), b = evaluate(e.b, env);
      switch (e.op) {
        case '+': return a + b;
        case '-': return a - b;
        case '*': return Math.imul(a, b);
        case '/': if (b === 0) throw new UnresolvedError('division by zero'); return Math.trunc(a / b);
        case '%': if (b === 0) throw new UnresolvedError('division by zero'); return a % b;
        case '<<': return a << b;
        case '>>': return a >> b;
        case '&': return a & b;
        case '|': return a | b;
        default: return a ^ b;
      }
    }
    case 'fn': {
      if (e.fn === 'pcrel_lo') {
        const label = evaluate(e.e, env);
        const t = env.pcrelHiTarget(label);
        if (t === undefined) throw new UnresolvedError('%pcrel_lo does not name the label of a %pcrel_hi instruction');
        return lo12(t - label);
      }
      const v = evaluate(e.e, env);
      if (e.fn === 'hi') return hi20(v);
      if (e.fn === 'lo') return lo12(v);
      return hi20(v - env.dot); // pcrel_hi
    }
  }
}

/** The %hi part: rounds so that (hi << 12) + lo12 == v. */
export const hi20 = (v: number): number => ((v + 0x800) >>> 12) & 0xfffff;
/** The %lo part: the sign-extended low 12 bits. */
export const lo12 = (v: number): number => (v << 20) >> 20;

/** True when the expression mentions %pcrel_hi (so its instruction defines a pcrel pair). */
export const isPcrelHi = (e: Expr): boolean => e.k === 'fn' && e.fn === 'pcrel_hi';
