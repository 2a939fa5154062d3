/**
 * The hvsim dashboard: log in with a tenant token; inventory of hosts and VMs; a VM page (live
 * console, counter charts, processes, lifecycle buttons, migration panel); a host page (frame
 * heat map, memory-error injection); experiments; an operations drawer. Routes are hash-based
 * (#/vm/ID), so the service serves one static page.
 */
import { render } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, errorText, getToken, listen, must, setToken, type HvEvent, type Schemas } from './api.js';
import { Chart, MAX_POINTS, type Series } from './charts.js';
import { Console } from './terminal.js';
import './style.css';

type Vm = Schemas['Vm'];
type Host = Schemas['Host'];

function useHash(): string[] {
  const [h, setH] = useState(location.hash);
  useEffect(() => {
    const f = () => setH(location.hash);
    addEventListener('hashchange', f);
    return () => removeEventListener('hashchange', f);
  }, []);
  return h.replace(/^#\/?/, '').split('/').filter(Boolean);
}

/** Loads with `load` now and again whenever `deps` change or `reload()` is called. */
function useData<T>(load: () => Promise<T>, deps: unknown[] = []): [T | null, () => void, string | null] {
  const [v, setV] = useState<T | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [n, setN] = useState(0);
  useEffect(() => { load().then((x) => { setV(x); setErr(null); }, (e) => setErr(errorText(e))); }, [...deps, n]);
  return [v, () => setN((k) => k + 1), err];
}

function ErrorLine({ error }: { error: string | null }) {
  return error ? <p class="error" role="alert">{error}</p> : null;
}

function Login() {
  const [token, setT] = useState('');
  const [err, setErr] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    const r = await fetch('/v1/hosts?pageSize=1', { headers: { Authorization: `Bearer ${token}` } });
    if (!r.ok) { setErr(r.status === 401 ? 'that token is not valid' : `the service answered ${r.status}`); return; }
    setToken(token);
    location.hash = '#/';
  };
  return (
    <form class="login card" onSubmit={submit}>
      <h1>hvsim</h1>
      <label>Tenant token <input name="token" type="password" value={token} onInput={(e) => setT((e.target as HTMLInputElement).value)} autoFocus /></label>
      <button type="submit">Log in</button>
      <ErrorLine error={err} />
      <p class="hint">A tenant token comes from <code>POST /v1/tenants</code> with the admin token, or <code>hvsim login</code>.</p>
    </form>
  );
}

function Inventory() {
  const [hosts, reloadHosts, hostErr] = useData(() => must(api().GET('/v1/hosts', { params: { query: { pageSize: 100 } } })));
  const [vms, reloadVms, vmErr] = useData(() => must(api().GET('/v1/vms', { params: { query: { pageSize: 100 } } })));
  // Retried once: the first listing of a tenant's images also stores the built-in ones.
  const listImages = () => must(api().GET('/v1/images', { params: { query: { pageSize: 100 } } }));
  const [images, , imageErr] = useData(() => listImages().catch(listImages));
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => {
    const subjects = [...(hosts?.items ?? []).map((h) => `host:${h.id}`), ...(vms?.items ?? []).map((v) => `vm:${v.id}`)];
    return listen(subjects, (e) => { if (e.type === 'vm.state' || e.type === 'host.state') { reloadVms(); reloadHosts(); } });
  }, [hosts?.items.length, vms?.items.length]);
  const createHost = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    try {
      await must(api().POST('/v1/hosts', { body: { name: String(f.get('name')), cpus: Number(f.get('cpus')), memoryMiB: Number(f.get('memoryMiB')) } }));
      setErr(null); reloadHosts(); (e.target as HTMLFormElement).reset();
    } catch (x) { setErr(errorText(x)); }
  };
  const createVm = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    const argv = String(f.get('argv') ?? '').trim();
    try {
      const vm = await must(api().POST('/v1/vms', { body: {
        name: String(f.get('name')), hostId: String(f.get('hostId')) || undefined, vcpus: Number(f.get('vcpus')), memoryMiB: Number(f.get('memoryMiB')),
        processes: [{ imageId: String(f.get('imageId')), ...(argv ? { argv: argv.split(/\s+/) } : {}) }],
      } }));
      setErr(null); location.hash = `#/vm/${vm.id}`;
    } catch (x) { setErr(errorText(x)); }
  };
  const hostName = (id: string) => hosts?.items.find((h) => h.id === id)?.name ?? id.slice(0, 8);
  return (
    <div class="page">
      <section class="card">
        <h2>Hosts</h2>
        <ErrorLine error={hostErr} />
        <table data-testid="hosts"><thead><tr><th>Name</th><th>CPUs</th><th>Memory</th><th>Free</th><th>State</th></tr></thead><tbody>
          {(hosts?.items ?? []).map((h) => (
            <tr key={h.id}><td><a href={`#/host/${h.id}`}>{h.name}</a></td><td>{h.cpus}</td><td>{h.memoryMiB} MiB</td><td>{h.memory.freeMiB} MiB</td><td><span class={`state ${h.state}`}>{h.state}</span></td></tr>
          ))}
        </tbody></table>
        <form class="inline" onSubmit={createHost} aria-label="create host">
          <input name="name" placeholder="name" required />
          <label>CPUs <input name="cpus" type="number" min={1} max={64} value={2} /></label>
          <label>MiB <input name="memoryMiB" type="number" min={16} max={16384} value={128} /></label>
          <button type="submit">Create host</button>
        </form>
      </section>
      <section class="card">
        <h2>VMs</h2>
        <ErrorLine error={vmErr ?? imageErr} />
        <table data-testid="vms"><thead><tr><th>Name</th><th>Host</th><th>vCPUs</th><th>Memory</th><th>State</th></tr></thead><tbody>
          {(vms?.items ?? []).map((v) => (
            <tr key={v.id}><td><a href={`#/vm/${v.id}`}>{v.name}</a></td><td>{hostName(v.hostId)}</td><td>{v.vcpus}</td><td>{v.memoryMiB} MiB</td><td><span class={`state ${v.state}`}>{v.state}</span></td></tr>
          ))}
        </tbody></table>
        <form class="inline" onSubmit={createVm} aria-label="create VM">
          <input name="name" placeholder="name" required />
          <select name="hostId" aria-label="host"><option value="">any host</option>{(hosts?.items ?? []).map((h) => <option value={h.id}>{h.name}</option>)}</select>
          <select name="imageId" aria-label="image" required>{(images?.items ?? []).map((i) => <option value={i.id}>{i.name}</option>)}</select>
          <input name="argv" placeholder="argv (optional)" />
          <label>vCPUs <input name="vcpus" type="number" min={1} max={16} value={1} /></label>
          <label>MiB <input name="memoryMiB" type="number" min={1} max={65536} value={16} /></label>
          <button type="submit">Create VM</button>
        </form>
      </section>
      <ErrorLine error={err} />
    </div>
  );
}

interface Rates { times: number[]; instructions: number[]; crossings: number[]; exits: Map<string, number[]> }
type CounterData = { instructions: number; crossings: number; exits?: Record<string, number>; wallMs?: number; final?: boolean };

/** Rates per second between consecutive vm.counters events, the newest MAX_POINTS. */
function addRate(r: Rates, prev: CounterData & { t: number }, cur: CounterData & { t: number }): Rates {
  const dt = (cur.t - prev.t) / 1000;
  if (dt <= 0) return r;
  const push = (a: number[], v: number) => { const b = a.length >= MAX_POINTS ? a.slice(1) : a.slice(); b.push(v); return b; };
  const exits = new Map<string, number[]>();
  const reasons = new Set([...r.exits.keys(), ...Object.keys(cur.exits ?? {})]);
  for (const k of reasons) {
    const old = r.exits.get(k) ?? Array(r.times.length).fill(0);
    exits.set(k, push(old, ((cur.exits?.[k] ?? 0) - (prev.exits?.[k] ?? 0)) / dt));
  }
  return {
    times: push(r.times, cur.t / 1000), instructions: push(r.instructions, (cur.instructions - prev.instructions) / dt),
    crossings: push(r.crossings, (cur.crossings - prev.crossings) / dt), exits,
  };
}

/** Migration statistics (runtime/live-migration stats after each round; the downtime once completed). */
const STAT_LABELS: Array<[string, string]> = [
  ['round', 'round'], ['total', 'guest RAM (bytes)'], ['transferred', 'transferred (bytes)'], ['remaining', 'remaining (bytes)'],
  ['dirtyPagesRate', 'dirty rate (pages/s)'], ['errorPages', 'error pages'], ['expectedDowntimeMs', 'expected downtime (ms)'],
  ['downtimeVirtualMs', 'downtime (virtual ms)'], ['downtimeWallMs', 'downtime (wall ms)'],
];

function VmPage({ id }: { id: string }) {
  const [vm, reload, err] = useData(() => must(api().GET('/v1/vms/{id}', { params: { path: { id } } })), [id]);
  const [hosts] = useData(() => must(api().GET('/v1/hosts', { params: { query: { pageSize: 100 } } })));
  const [actErr, setActErr] = useState<string | null>(null);
  const [rates, setRates] = useState<Rates>({ times: [], instructions: [], crossings: [], exits: new Map() });
  const [migration, setMigration] = useState<{ id: string; phases: string[]; stats: Record<string, unknown> | null } | null>(null);
  const [events, setEvents] = useState<HvEvent[]>([]);
  useEffect(() => {
    let prev: (CounterData & { t: number }) | null = null;
    return listen([`vm:${id}`], (e) => {
      if (e.type === 'vm.counters') {
        const cur = { ...(e.data as unknown as CounterData), t: (e.data as { wallMs?: number }).wallMs ?? Date.parse(e.time) };
        if (prev && cur.t > prev.t) { const p = prev; setRates((r) => addRate(r, p, cur)); }
        prev = cur;
        return;
      }
      if (e.type === 'vm.console') return;
      setEvents((l) => [e, ...l].slice(0, 50));
      if (e.type === 'vm.state' || e.type === 'vm.process') reload();
      if (e.type === 'migration.phase') {
        const d = e.data as { migrationId: string; to: string };
        setMigration((m) => (m && m.id === d.migrationId ? { ...m, phases: [...m.phases, d.to] } : { id: d.migrationId, phases: [d.to], stats: null }));
        if (['completed', 'failed', 'cancelled'].includes(d.to)) {
          reload();
          // The final statistics (with the actual downtime) are on the migration resource.
          void must(api().GET('/v1/migrations/{id}', { params: { path: { id: d.migrationId } } })).then((m) => {
            setMigration((x) => (x && x.id === m.id ? { ...x, stats: (m.stats ?? x.stats) as Record<string, unknown> | null } : x));
          }, () => {});
        }
      }
      if (e.type === 'migration.progress') {
        const d = e.data as { migrationId: string } & Record<string, unknown>;
        setMigration((m) => (m ? { ...m, stats: d } : { id: d.migrationId, phases: [], stats: d }));
      }
    });
  }, [id]);
  const feed = useCallback((write: (t: string) => void) => {
    let live = false;
    const queued: string[] = [];
    const stop = listen([`vm:${id}`], (e) => {
      if (e.type !== 'vm.console') return;
      const text = (e.data as { text: string }).text;
      if (live) write(text); else queued.push(text);
    });
    // What was printed before this page opened, then the live stream (events after it are not lost: they queue meanwhile).
    void must(api().GET('/v1/vms/{id}/console', { params: { path: { id } } })).then((c) => { if (typeof c === 'object') write(c.stdout + c.stderr); }, () => {}).finally(() => {
      live = true;
      for (const t of queued.splice(0)) write(t);
    });
    return stop;
  }, [id]);
  const act = async (action: 'start' | 'pause' | 'resume' | 'stop' | 'reset') => {
    const r = await api().POST(`/v1/vms/{id}/${action}`, { params: { path: { id } } });
    setActErr(r.error ? errorText((r.error as { detail?: string }).detail ?? r.response.statusText) : null);
    reload();
  };
  const migrate = async (e: Event) => {
    e.preventDefault();
    const dest = String(new FormData(e.target as HTMLFormElement).get('destination'));
    try {
      const r = await must(api().POST('/v1/vms/{id}/migrations', { params: { path: { id } }, body: { destinationHostId: dest, mode: 'precopy' } }));
      setMigration({ id: r.migration.id, phases: [r.migration.phase], stats: null });
      setActErr(null);
    } catch (x) { setActErr(errorText(x)); }
  };
  if (!vm) return <div class="page"><ErrorLine error={err} /></div>;
  const exitSeries: Series[] = [...rates.exits].map(([label, values]) => ({ label, values }));
  const s = migration?.stats ?? {};
  return (
    <div class="page">
      <section class="card">
        <h2>{vm.name} <span class={`state ${vm.state}`} data-testid="vm-state">{vm.state}</span></h2>
        <p>host <a href={`#/host/${vm.hostId}`}>{hosts?.items.find((h) => h.id === vm.hostId)?.name ?? vm.hostId}</a> · {vm.vcpus} vCPU · {vm.memoryMiB} MiB · engine {vm.engine}</p>
        <div class="buttons">
          {(['start', 'pause', 'resume', 'stop', 'reset'] as const).map((a) => <button onClick={() => act(a)}>{a[0].toUpperCase() + a.slice(1)}</button>)}
        </div>
        <ErrorLine error={actErr} />
      </section>
      <section class="card"><h3>Console</h3><Console feed={feed} /></section>
      <section class="card charts">
        <Chart title="instructions/s" times={rates.times} series={[{ label: 'instructions/s', values: rates.instructions }]} />
        <Chart title="crossings/s" times={rates.times} series={[{ label: 'crossings/s', values: rates.crossings }]} />
        {exitSeries.length > 0 && <Chart title="exits/s" times={rates.times} series={exitSeries} />}
      </section>
      <section class="card">
        <h3>Processes</h3>
        <table data-testid="processes"><thead><tr><th>PID</th><th>Name</th><th>State</th><th>Status</th></tr></thead><tbody>
          {(vm.run?.processes ?? []).map((p) => <tr><td>{p.pid}</td><td>{p.name}</td><td>{p.state}</td><td>{p.status ?? ''}{p.signal ? ` (signal ${p.signal})` : ''}</td></tr>)}
        </tbody></table>
      </section>
      <section class="card" data-testid="migration">
        <h3>Migration</h3>
        <form class="inline" onSubmit={migrate}>
          <select name="destination" aria-label="destination host">{(hosts?.items ?? []).filter((h) => h.id !== vm.hostId).map((h) => <option value={h.id}>{h.name}</option>)}</select>
          <button type="submit">Migrate</button>
        </form>
        {migration && (
          <div>
            <ol class="phases" data-testid="phases">{migration.phases.map((p) => <li class={p}>{p}</li>)}</ol>
            <dl class="stats">
              {STAT_LABELS.filter(([k]) => s[k] !== undefined).map(([k, label]) => <><dt>{label}</dt><dd data-stat={k}>{typeof s[k] === 'number' ? Number(s[k]).toLocaleString('en', { maximumFractionDigits: 2 }) : String(s[k])}</dd></>)}
            </dl>
          </div>
        )}
      </section>
      <section class="card"><h3>Events</h3><ul class="events" data-testid="vm-events">{events.map((e) => <li>#{e.seq} {e.type} {JSON.stringify(e.data).slice(0, 160)}</li>)}</ul></section>
    </div>
  );
}

const FRAME_COLORS: Record<string, string> = { free: '#e5e7eb', guest: '#3b82f6', hypervisor: '#8b5cf6', poisoned: '#dc2626', retired: '#111827' };

function HeatMap({ map }: { map: Schemas['MemoryMap'] }) {
  const cols = 256;
  const rows = Math.ceil(map.frames / cols);
  const draw = (c: HTMLCanvasElement | null) => {
    if (!c) return;
    const g = c.getContext('2d')!;
    let f = 0;
    for (const [state, count] of map.runs as Array<[string, number]>) {
      g.fillStyle = state.endsWith('-poisoned') ? '#f97316' : FRAME_COLORS[state] ?? '#9ca3af';
      for (let k = 0; k < count; k++, f++) g.fillRect((f % cols) * 3, Math.floor(f / cols) * 3, 3, 3);
    }
  };
  const counts = new Map<string, number>();
  for (const [state, count] of map.runs as Array<[string, number]>) counts.set(state, (counts.get(state) ?? 0) + count);
  return (
    <div>
      <canvas ref={draw} width={cols * 3} height={rows * 3} data-testid="heatmap" />
      <ul class="legend" data-testid="frame-counts">{[...counts].map(([k, n]) => <li><i style={{ background: k.endsWith('-poisoned') ? '#f97316' : FRAME_COLORS[k] }} />{k}: {n}</li>)}</ul>
    </div>
  );
}

function HostPage({ id }: { id: string }) {
  const [host, reloadHost, err] = useData(() => must(api().GET('/v1/hosts/{id}', { params: { path: { id } } })), [id]);
  const [map, reloadMap] = useData(() => must(api().GET('/v1/hosts/{id}/memory-map', { params: { path: { id } } })), [id]);
  const [errors, reloadErrors] = useData(() => must(api().GET('/v1/hosts/{id}/memory-errors', { params: { path: { id }, query: { pageSize: 100 } } })), [id]);
  const [events, setEvents] = useState<HvEvent[]>([]);
  const [formErr, setFormErr] = useState<string | null>(null);
  useEffect(() => listen([`host:${id}`], (e) => { setEvents((l) => [e, ...l].slice(0, 50)); reloadMap(); reloadErrors(); reloadHost(); }), [id]);
  useEffect(() => { const t = setInterval(reloadMap, 2000); return () => clearInterval(t); }, [id]);
  const inject = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    const num = (k: string) => { const v = String(f.get(k) ?? '').trim(); return v === '' ? undefined : Number(v); };
    const vmId = String(f.get('vmId') ?? '').trim() || undefined;
    try {
      await must(api().POST('/v1/hosts/{id}/memory-errors', { params: { path: { id } }, body: {
        kind: String(f.get('kind')) as 'uncorrectable' | 'corrected', latent: f.get('latent') === 'on',
        ...(vmId ? { vmId, guestPhysicalAddress: num('guestPhysicalAddress') } : { hostPhysicalAddress: num('hostPhysicalAddress') }),
      } }));
      setFormErr(null); reloadMap(); reloadErrors(); reloadHost();
    } catch (x) { setFormErr(errorText(x)); }
  };
  if (!host) return <div class="page"><ErrorLine error={err} /></div>;
  return (
    <div class="page">
      <section class="card">
        <h2>{host.name} <span class={`state ${host.state}`}>{host.state}</span></h2>
        <p>{host.cpus} CPUs · {host.memoryMiB} MiB · {host.memory.freeMiB} MiB free · {host.memory.poisonedFrames} poisoned · {host.memory.retiredFrames} retired frames</p>
      </section>
      <section class="card"><h3>Frames</h3>{map && <HeatMap map={map} />}</section>
      <section class="card">
        <h3>Inject a memory error</h3>
        <form class="inline" onSubmit={inject} aria-label="inject memory error">
          <input name="hostPhysicalAddress" placeholder="host-physical address" />
          <span>or</span>
          <input name="vmId" placeholder="VM id" />
          <input name="guestPhysicalAddress" placeholder="guest-physical address" />
          <select name="kind" aria-label="kind"><option>uncorrectable</option><option>corrected</option></select>
          <label><input type="checkbox" name="latent" /> latent</label>
          <button type="submit">Inject</button>
        </form>
        <ErrorLine error={formErr} />
        <table data-testid="memory-errors"><thead><tr><th>Frame</th><th>Address</th><th>Kind</th><th>State</th><th>Hit</th></tr></thead><tbody>
          {(errors?.items ?? []).map((m) => <tr><td>{m.frame}</td><td>0x{m.hostPhysicalAddress.toString(16)}</td><td>{m.kind}</td><td>{m.state}</td><td>{String(m.hit.type)}</td></tr>)}
        </tbody></table>
      </section>
      <section class="card"><h3>Events</h3><ul class="events" data-testid="host-events">{events.map((e) => <li>#{e.seq} {e.type} {JSON.stringify(e.data).slice(0, 160)}</li>)}</ul></section>
    </div>
  );
}

function Experiments() {
  const [list, reload] = useData(() => must(api().GET('/v1/experiments', { params: { query: { pageSize: 100 } } })));
  const [techniques] = useData(() => must(api().GET('/v1/techniques')));
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => { const t = setInterval(reload, 2000); return () => clearInterval(t); }, []);
  const run = async (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.target as HTMLFormElement);
    const on = f.getAll('technique').map(String);
    try {
      await must(api().POST('/v1/experiments', { body: {
        workload: { builtin: String(f.get('workload')) },
        variants: [{ name: 'baseline', techniques: {} }, ...on.map((t) => ({ name: t, techniques: { [t]: { enabled: true } } }))],
      } }));
      setErr(null); reload();
    } catch (x) { setErr(errorText(x)); }
  };
  const implemented = (techniques?.items ?? []).filter((t) => t.support !== 'not-implemented');
  return (
    <div class="page">
      <section class="card">
        <h2>Experiments</h2>
        <form class="inline" onSubmit={run} aria-label="run experiment">
          <select name="workload" aria-label="workload">{['hello', 'cpu', 'syscalls', 'memtouch', 'mix'].map((w) => <option>{w}</option>)}</select>
          {implemented.map((t) => <label><input type="checkbox" name="technique" value={t.name} /> {t.name}</label>)}
          <button type="submit">Run</button>
        </form>
        <ErrorLine error={err} />
      </section>
      {[...(list?.items ?? [])].reverse().map((x) => <ExperimentCard x={x} />)}
    </div>
  );
}

function ExperimentCard({ x }: { x: Schemas['Experiment'] }) {
  const variants = ((x.result as { variants?: Array<{ name: string; ratios?: Record<string, number>; diverged?: boolean }> } | null)?.variants) ?? [];
  return (
    <section class="card" data-testid="experiment">
      <h3>{(x.spec as { workload?: { builtin?: string } }).workload?.builtin ?? 'image'} <span class={`state ${x.state}`}>{x.state}</span></h3>
      {x.error && <p class="error">{x.error}</p>}
      {variants.map((v) => (
        <div class="variant">
          <strong>{v.name}{v.diverged ? ' (diverged)' : ''}</strong>
          {Object.entries(v.ratios ?? {}).filter(([, r]) => typeof r === 'number').map(([k, r]) => (
            <div class="bar"><span>{k}</span><i style={{ width: `${Math.min(100, r * 50)}%` }} /><b>{r.toFixed(3)}</b></div>
          ))}
        </div>
      ))}
    </section>
  );
}

function OperationsDrawer({ open }: { open: boolean }) {
  const [ops, reload] = useData(() => must(api().GET('/v1/operations', { params: { query: { pageSize: 100 } } })));
  useEffect(() => { if (!open) return; const t = setInterval(reload, 1000); return () => clearInterval(t); }, [open]);
  if (!open) return null;
  const cancel = async (id: string) => { await api().POST('/v1/operations/{id}/cancel', { params: { path: { id } } }); reload(); };
  const items = [...(ops?.items ?? [])].reverse().slice(0, 30);
  return (
    <aside class="drawer" data-testid="operations">
      <h3>Operations</h3>
      {items.map((o) => (
        <div class={`op ${o.state}`}>
          <div>{o.kind} <small>{o.subject}</small></div>
          <progress max={1} value={o.progress} /> <span>{o.state}</span>
          {(o.state === 'pending' || o.state === 'running') && <button onClick={() => cancel(o.id)}>Cancel</button>}
          {o.error && <small class="error">{o.error.message}</small>}
        </div>
      ))}
    </aside>
  );
}

function App() {
  const route = useHash();
  const [drawer, setDrawer] = useState(false);
  if (!getToken() || route[0] === 'login') return <Login />;
  const page = route[0] === 'vm' && route[1] ? <VmPage id={route[1]} />
    : route[0] === 'host' && route[1] ? <HostPage id={route[1]} />
    : route[0] === 'experiments' ? <Experiments />
    : <Inventory />;
  return (
    <div class="layout">
      <nav>
        <a href="#/" class="brand">hvsim</a>
        <a href="#/">Inventory</a>
        <a href="#/experiments">Experiments</a>
        <button onClick={() => setDrawer(!drawer)}>Operations</button>
        <button onClick={() => { setToken(null); location.hash = '#/login'; location.reload(); }}>Log out</button>
      </nav>
      <main>{page}</main>
      <OperationsDrawer open={drawer} />
    </div>
  );
}

render(<App />, document.getElementById('app')!);
