/** A read-only xterm.js console fed with text (scrollback bounded). */
import { useEffect, useRef } from 'preact/hooks';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';

export function Console({ feed }: { feed: (write: (text: string) => void) => () => void }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const term = new Terminal({ convertEol: true, disableStdin: true, scrollback: 2000, rows: 16, cols: 96, fontSize: 12 });
    term.open(el.current!);
    const stop = feed((t) => term.write(t));
    return () => { stop(); term.dispose(); };
  }, [feed]);
  return <div class="console" data-testid="console" ref={el} />;
}
