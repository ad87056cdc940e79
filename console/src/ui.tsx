// Small building blocks: loading state, errors with the fields they name, labelled fields, tables
// and SVG charts (a chart of a few hundred points needs no charting library).
import { useCallback, useEffect, useRef, useState, type FormEvent, type ReactNode } from "react";
import type { Nav } from "./App";
import { failure, versionText, type Api, type Failure } from "./api";
import { useT } from "./i18n";

export function useAsync<T>(load: () => Promise<T>, deps: unknown[]) {
  const [state, setState] = useState<{ value?: T; error?: Failure; loading: boolean }>({ loading: true });
  const loader = useRef(load);
  loader.current = load;
  const reload = useCallback(() => {
    setState((s) => ({ ...s, loading: true }));
    loader.current().then(
      (value) => setState({ value, loading: false }),
      (error) => setState({ error: failure(error), loading: false }),
    );
  }, []);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  useEffect(reload, deps);
  return { ...state, reload };
}

/** Follows a server stream (a job, an evaluation, a deployment) while the component shows:
 * `onItem` gets each message; returns the error that ended it, if any. */
export function useStream<T>(open: (signal: AbortSignal) => AsyncIterable<T>, onItem: (item: T) => void, deps: unknown[]) {
  const [error, setError] = useState<Failure | null>(null);
  const opener = useRef(open);
  const handler = useRef(onItem);
  opener.current = open;
  handler.current = onItem;
  useEffect(() => {
    const stop = new AbortController();
    setError(null);
    (async () => {
      try {
        for await (const item of opener.current(stop.signal)) handler.current(item);
      } catch (e) {
        if (!stop.signal.aborted) setError(failure(e));
      }
    })();
    return () => stop.abort();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return error;
}

/** Runs `act` with a busy flag and keeps its failure (with the fields it names) for the page;
 *  `submit` runs it as a form's onSubmit. */
export function useAction<A extends unknown[]>(act: (...args: A) => Promise<unknown>) {
  const [error, setError] = useState<Failure | null>(null);
  const [busy, setBusy] = useState(false);
  const run = async (...args: A) => {
    setBusy(true);
    setError(null);
    try {
      await act(...args);
    } catch (e) {
      setError(failure(e));
    } finally {
      setBusy(false);
    }
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void run(...([] as unknown as A));
  };
  return { error, busy, run, submit };
}

/** A form's values, and `set` to change some of them. */
export function useFields<F extends object>(initial: F) {
  const [form, setForm] = useState(initial);
  return { form, setForm, set: (change: Partial<F>) => setForm({ ...form, ...change }) };
}

export function ErrorBox({ error }: { error?: Failure | null }) {
  const { t } = useT();
  if (!error) return null;
  return (
    <div className="error" role="alert">
      <strong>
        {t("error")}: {error.code}
        {error.reason ? ` (${error.reason})` : ""}
      </strong>{" "}
      {error.message}
      {error.violations.length > 0 && (
        <ul>
          {error.violations.map((v) => (
            <li key={v.field}>
              <code>{v.field}</code>: {v.description}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

export function Loading({ loading }: { loading: boolean }) {
  const { t } = useT();
  return loading ? <p className="muted">{t("loading")}</p> : null;
}

/** A labelled field; `error` is the server's complaint about the field it names. */
export function Field(props: { id: string; label: string; error?: string; children: ReactNode; help?: ReactNode }) {
  return (
    <div className={props.error ? "field invalid" : "field"}>
      <label htmlFor={props.id}>{props.label}</label>
      {props.children}
      {props.error && (
        <p className="field-error" id={`${props.id}-error`} role="alert">
          {props.error}
        </p>
      )}
      {props.help}
    </div>
  );
}

/** The violation a failure reports for `field` (its dotted path ends with it). */
export function violationFor(error: Failure | null | undefined, field: string): string | undefined {
  return error?.violations.find((v) => v.field === field || v.field.endsWith(`.${field}`))?.description;
}

export function Table(props: { head: ReactNode[]; rows: ReactNode[][]; label?: string; empty?: string }) {
  const { t } = useT();
  if (props.rows.length === 0) return <p className="muted">{props.empty ?? t("none")}</p>;
  return (
    <div className="table-wrap">
      <table aria-label={props.label}>
        <thead>
          <tr>
            {props.head.map((h, i) => (
              <th key={i}>{h}</th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row, i) => (
            <tr key={i}>
              {row.map((cell, j) => (
                <td key={j}>{cell}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

export type Series = { name: string; color: string; points: [number, number][] };

function ticks(lo: number, hi: number, count = 4): number[] {
  if (hi <= lo) return [lo];
  return Array.from({ length: count + 1 }, (_, i) => lo + ((hi - lo) * i) / count);
}

function fmt(value: number): string {
  if (value === 0) return "0";
  const abs = Math.abs(value);
  return abs >= 1000 || abs < 0.01 ? value.toExponential(1) : Number(value.toPrecision(3)).toString();
}

/** Lines over a shared x axis, with a legend; `label` names the chart for screen readers. */
export function LineChart(props: { series: Series[]; label: string; xLabel?: string; height?: number }) {
  const width = 640;
  const height = props.height ?? 240;
  const pad = { left: 52, right: 12, top: 12, bottom: 30 };
  const points = props.series.flatMap((s) => s.points);
  if (points.length === 0) return <p className="muted">—</p>;
  const xs = points.map((p) => p[0]);
  const ys = points.map((p) => p[1]).filter(Number.isFinite);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 1)];
  // The y axis spans the values (with a margin), so a loss that falls from 6.9 to 6.6 is visible.
  const [lo, hi] = [Math.min(...ys), Math.max(...ys)];
  const margin = hi > lo ? (hi - lo) * 0.08 : Math.abs(hi) * 0.1 || 1;
  const [y0, y1] = [lo >= 0 && lo - margin < 0 ? 0 : lo - margin, hi + margin];
  const sx = (x: number) => pad.left + ((x - x0) / (x1 - x0)) * (width - pad.left - pad.right);
  const sy = (y: number) => height - pad.bottom - ((y - y0) / (y1 - y0)) * (height - pad.top - pad.bottom);
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={props.label}>
        {ticks(y0, y1).map((y) => (
          <g key={`y${y}`}>
            <line x1={pad.left} x2={width - pad.right} y1={sy(y)} y2={sy(y)} className="grid" />
            <text x={pad.left - 6} y={sy(y) + 4} textAnchor="end">
              {fmt(y)}
            </text>
          </g>
        ))}
        {ticks(x0, x1).map((x) => (
          <text key={`x${x}`} x={sx(x)} y={height - 10} textAnchor="middle">
            {fmt(Math.round(x))}
          </text>
        ))}
        {props.series.map((s) =>
          s.points.length === 1 ? (
            <circle key={s.name} cx={sx(s.points[0][0])} cy={sy(s.points[0][1])} r={3} fill={s.color} />
          ) : (
            <polyline
              key={s.name}
              fill="none"
              stroke={s.color}
              strokeWidth={2}
              points={s.points.map(([x, y]) => `${sx(x)},${sy(y)}`).join(" ")}
            />
          ),
        )}
      </svg>
      <figcaption>
        {props.series.map((s) => (
          <span key={s.name} className="legend">
            <i style={{ background: s.color }} /> {s.name}
          </span>
        ))}
        {props.xLabel && <span className="muted"> · {props.xLabel}</span>}
      </figcaption>
    </figure>
  );
}

/** Horizontal bars, one per label (metric values side by side). */
export function BarChart(props: { bars: { label: string; value: number; color?: string }[]; label: string }) {
  const max = Math.max(...props.bars.map((b) => Math.abs(b.value)), 1e-9);
  return (
    <div className="bars" role="img" aria-label={props.label}>
      {props.bars.map((b) => (
        <div key={b.label} className="bar-row">
          <span className="bar-label">{b.label}</span>
          <span className="bar" style={{ width: `${(Math.abs(b.value) / max) * 70}%`, background: b.color ?? "#3a6ea5" }} />
          <span className="bar-value">{fmt(b.value)}</span>
        </div>
      ))}
    </div>
  );
}

/** A link inside the console: a real address (a new tab works), followed by the router on a click. */
export function NavLink({ nav, to, children }: { nav: Nav; to: string; children: ReactNode }) {
  return (
    <a
      href={to}
      onClick={(event) => {
        event.preventDefault();
        nav.go(to);
      }}
    >
      {children}
    </a>
  );
}

/** A dataset version, linked to its page. */
export function DataVersionLink({ api, nav, name }: { api: Api; nav: Nav; name: string }) {
  const text = versionText(api, name);
  const [dataset, version] = text.split("/versions/");
  return (
    <NavLink nav={nav} to={`/data?dataset=${dataset}&version=${version}`}>
      {text}
    </NavLink>
  );
}

export function StateBadge({ state }: { state: string }) {
  return <span className={`badge state-${state.toLowerCase()}`}>{state}</span>;
}

export function enumName(value: number, names: Record<number, string>): string {
  return names[value] ?? String(value);
}
