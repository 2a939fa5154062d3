/** A uPlot time-series chart of a fixed number of points (older points are dropped: memory stays bounded). */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export const MAX_POINTS = 240;

export interface Series { label: string; values: number[] }

export function Chart({ title, times, series }: { title: string; times: number[]; series: Series[] }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const labels = series.map((s) => s.label).join('\u0000');
  useEffect(() => {
    const palette = ['#2563eb', '#dc2626', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];
    plot.current = new uPlot({
      title, width: 460, height: 180,
      series: [{ label: 's' }, ...series.map((s, i) => ({ label: s.label, stroke: palette[i % palette.length], width: 1.5 }))],
      scales: { x: { time: false } },
      axes: [{ label: 's since start' }, { size: 90 }],
    }, [times, ...series.map((s) => s.values)], el.current!);
    return () => { plot.current?.destroy(); plot.current = null; };
  }, [labels]);
  useEffect(() => { plot.current?.setData([times, ...series.map((s) => s.values)]); }, [times, series]);
  return <div class="chart" data-testid={`chart-${title}`} data-points={times.length} ref={el} />;
}
