// 数据管理: datasets and their versions, uploads (with the table of bad rows by file, line and
// field), rows, insight, cleaning counts, and the mixing plan as the seed shows it.
import { Code, ConnectError } from "@connectrpc/connect";
import { useState, type FormEvent } from "react";
import type { Nav } from "../App";
import { date, failure, requestId, short, uploadDataset, versionName, versionText, type Api, type Failure } from "../api";
import { ComputationState, DatasetKind, DatasetVersionState, type DatasetVersion, type MixturePlan } from "../gen/tuneforge/data/v1/dataset_pb";
import { useT } from "../i18n";
import { BarChart, ErrorBox, Field, Loading, NavLink, StateBadge, Table, useAsync } from "../ui";

export function DataPage({ api, nav }: { api: Api; nav: Nav }) {
  const { t } = useT();
  const datasets = useAsync(() => api.data.listDatasets({ parent: api.parent, pageSize: 100 }), [api]);
  const selected = nav.query.get("dataset") ?? "";
  const open = (id: string) => nav.go(`/data?dataset=${encodeURIComponent(id)}`);
  const [uploads, setUploads] = useState(0); // a new upload refreshes the versions shown
  return (
    <section>
      <h1>{t("data")}</h1>
      <div className="grid2">
        <article className="card">
          <h2>{t("datasets")}</h2>
          <Loading loading={datasets.loading && !datasets.value} />
          <ErrorBox error={datasets.error} />
          {datasets.value && (
            <Table
              label={t("datasets")}
              head={[t("name"), t("kind"), t("versions")]}
              rows={datasets.value.datasets.map((d) => [
                <NavLink nav={nav} to={`/data?dataset=${encodeURIComponent(short(d.name))}`}>
                  {short(d.name)}
                </NavLink>,
                DatasetKind[d.kind].toLowerCase(),
                String(d.versionCount),
              ])}
            />
          )}
        </article>
        <Upload api={api} initial={selected} onDone={(dataset) => { datasets.reload(); setUploads((n) => n + 1); open(dataset); }} />
      </div>
      {selected && <Versions key={`${selected}:${uploads}`} api={api} dataset={selected} nav={nav} />}
      <MixingPlan api={api} />
    </section>
  );
}

function Upload({ api, initial, onDone }: { api: Api; initial: string; onDone: (dataset: string) => void }) {
  const { t } = useT();
  const [dataset, setDataset] = useState(initial);
  const [file, setFile] = useState<File | null>(null);
  const [kind, setKind] = useState(DatasetKind.SFT);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Failure | null>(null);
  const [version, setVersion] = useState<DatasetVersion | null>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!file) return;
    setBusy(true);
    setError(null);
    setVersion(null);
    try {
      try {
        await api.data.getDataset({ name: `${api.parent}/datasets/${dataset}` });
      } catch (e) {
        if (ConnectError.from(e).code !== Code.NotFound) throw e;
        await api.data.createDataset({ parent: api.parent, datasetId: dataset, dataset: { kind }, requestId: requestId() });
      }
      let made = await uploadDataset(api, dataset, file);
      if (made.state === DatasetVersionState.PROCESSING) {
        for await (const update of api.data.watchDatasetVersion({ name: made.name })) {
          made = update;
          if (update.state !== DatasetVersionState.PROCESSING) break;
        }
      }
      setVersion(made);
      onDone(dataset);
    } catch (e) {
      setError(failure(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="card" onSubmit={submit} aria-labelledby="upload-title">
      <h2 id="upload-title">{t("upload")}</h2>
      <Field id="upload-dataset" label={t("uploadTo")}>
        <input id="upload-dataset" value={dataset} onChange={(e) => setDataset(e.target.value)} required pattern="[a-z][a-z0-9\-]{0,62}" />
      </Field>
      <Field id="upload-kind" label={t("kind")}>
        <select id="upload-kind" value={kind} onChange={(e) => setKind(Number(e.target.value))}>
          {[DatasetKind.SFT, DatasetKind.TEXT, DatasetKind.PREFERENCE, DatasetKind.UNPAIRED_PREFERENCE, DatasetKind.PROMPT_ONLY, DatasetKind.EVAL].map((k) => (
            <option key={k} value={k}>
              {DatasetKind[k].toLowerCase()}
            </option>
          ))}
        </select>
      </Field>
      <Field id="upload-file" label={t("file")}>
        <input id="upload-file" type="file" accept=".jsonl,.json,.csv,.txt,.parquet" onChange={(e) => setFile(e.target.files?.[0] ?? null)} required />
      </Field>
      <button type="submit" disabled={busy || !file}>
        {busy ? t("uploading") : t("upload")}
      </button>
      <ErrorBox error={error} />
      {version && <VersionSummary version={version} />}
    </form>
  );
}

function VersionSummary({ version }: { version: DatasetVersion }) {
  const { t } = useT();
  const errors = version.errors;
  return (
    <div className="version-summary" data-testid="version-summary">
      <p>
        <code>{version.name}</code> <StateBadge state={DatasetVersionState[version.state]} /> {String(version.rowCount)} {t("rows")}
      </p>
      {version.failure?.message && <p className="error">{version.failure.reason}: {version.failure.message}</p>}
      {errors && errors.errorCount > 0n && (
        <>
          <h3>
            {t("uploadErrors")} ({String(errors.errorCount)} {t("errorsTotal")})
          </h3>
          <Table
            label={t("uploadErrors")}
            head={[t("file"), t("line"), t("row"), t("field"), t("reason"), t("message")]}
            rows={errors.examples.map((e) => [e.file, String(e.line), String(e.row), <code>{e.field}</code>, e.reason, e.message])}
          />
        </>
      )}
    </div>
  );
}

function Versions({ api, dataset, nav }: { api: Api; dataset: string; nav: Nav }) {
  const { t } = useT();
  const versions = useAsync(() => api.data.listDatasetVersions({ parent: `${api.parent}/datasets/${dataset}`, pageSize: 50 }), [api, dataset]);
  const chosen = nav.query.get("version");
  const pick = (name: string) => nav.go(`/data?dataset=${dataset}&version=${short(name)}`);
  const current = versions.value?.datasetVersions.find((v) => short(v.name) === chosen) ?? versions.value?.datasetVersions[0];
  return (
    <article className="card">
      <h2>
        {dataset}: {t("versions")}
      </h2>
      <ErrorBox error={versions.error} />
      <Loading loading={versions.loading && !versions.value} />
      {versions.value && (
        <Table
          label={t("versions")}
          head={[t("version"), t("state"), t("rows"), t("characters"), t("created")]}
          rows={versions.value.datasetVersions.map((v) => [
            <a href="#" onClick={(e) => { e.preventDefault(); pick(v.name); }}>{short(v.name)}</a>,
            <StateBadge state={DatasetVersionState[v.state]} />,
            String(v.rowCount),
            String(v.characterCount),
            date(v.createTime),
          ])}
        />
      )}
      {current && <VersionDetail key={current.name} api={api} version={current} nav={nav} />}
    </article>
  );
}

function VersionDetail({ api, version, nav }: { api: Api; version: DatasetVersion; nav: Nav }) {
  const { t } = useT();
  const rows = useAsync(
    async () => (version.state === DatasetVersionState.READY ? (await api.data.readDatasetRows({ name: version.name, pageSize: 10 })).rows : []),
    [version.name],
  );
  return (
    <div className="detail">
      <VersionSummary version={version} />
      {version.cleaning.length > 0 && (
        <>
          <h3>{t("cleaning")}</h3>
          <Table
            label={t("cleaning")}
            head={[t("operation"), t("rowsIn"), t("removed"), t("changed")]}
            rows={version.cleaning.map((c) => [c.operation, String(c.rowsIn), String(c.rowsRemoved), String(c.rowsChanged)])}
          />
        </>
      )}
      {version.state === DatasetVersionState.READY && (
        <div className="actions">
          {(["augmentation", "annotation"] as const).map((page) => (
            <button key={page} type="button" className="secondary" onClick={() => nav.go(`/${page}?source=${encodeURIComponent(versionText(api, version.name))}`)}>
              {t(page === "augmentation" ? "augmentThis" : "annotateThis")}
            </button>
          ))}
        </div>
      )}
      {version.state === DatasetVersionState.READY && <Insight api={api} version={version.name} />}
      {version.state === DatasetVersionState.READY && <Clean api={api} version={version.name} />}
      <h3>{t("preview")}</h3>
      <ErrorBox error={rows.error} />
      {rows.value && (
        <div className="rows">
          {rows.value.map((row, i) => (
            <pre key={i}>{JSON.stringify(row, null, 1)}</pre>
          ))}
        </div>
      )}
    </div>
  );
}

// The steps a cleaning may take with their defaults, in the order they run.
const CLEANING_STEPS = [
  "normalizeUnicode",
  "normalizeWhitespace",
  "dropEmpty",
  "maskPii",
  "exactDedup",
  "nearDedup",
] as const;

function Clean({ api, version }: { api: Api; version: string }) {
  const { t } = useT();
  const [steps, setSteps] = useState<Set<string>>(new Set(["normalizeWhitespace", "dropEmpty", "exactDedup"]));
  const [result, setResult] = useState<DatasetVersion | null>(null);
  const [error, setError] = useState<Failure | null>(null);
  const [busy, setBusy] = useState(false);
  const toggle = (step: string) => {
    const next = new Set(steps);
    if (next.has(step)) next.delete(step);
    else next.add(step);
    setSteps(next);
  };
  const clean = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      let made = await api.data.cleanDatasetVersion({
        name: version,
        requestId: requestId(),
        operations: CLEANING_STEPS.filter((s) => steps.has(s)).map((s) => ({ operation: { case: s, value: {} } })),
      });
      for await (const update of api.data.watchDatasetVersion({ name: made.name })) {
        made = update;
        if (update.state !== DatasetVersionState.PROCESSING) break;
      }
      setResult(made);
    } catch (e) {
      setError(failure(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form onSubmit={clean} aria-labelledby="clean-title">
      <h3 id="clean-title">{t("clean")}</h3>
      <fieldset className="checks">
        <legend className="sr-only">{t("clean")}</legend>
        {CLEANING_STEPS.map((step) => (
          <label key={step}>
            <input type="checkbox" checked={steps.has(step)} onChange={() => toggle(step)} /> {step}
          </label>
        ))}
      </fieldset>
      <button type="submit" disabled={busy || steps.size === 0}>
        {busy ? t("loading") : t("clean")}
      </button>
      <ErrorBox error={error} />
      {result && (
        <>
          <VersionSummary version={result} />
          <Table
            label={t("cleaning")}
            head={[t("operation"), t("rowsIn"), t("removed"), t("changed")]}
            rows={result.cleaning.map((c) => [c.operation, String(c.rowsIn), String(c.rowsRemoved), String(c.rowsChanged)])}
          />
        </>
      )}
    </form>
  );
}

function Insight({ api, version }: { api: Api; version: string }) {
  const { t } = useT();
  const [report, setReport] = useState<Record<string, unknown> | null>(null);
  const [error, setError] = useState<Failure | null>(null);
  const [busy, setBusy] = useState(false);
  const compute = async () => {
    setBusy(true);
    setError(null);
    try {
      const started = await api.data.computeDatasetInsight({ name: version });
      for await (const insight of api.data.watchDatasetInsight({ name: started.name })) {
        if (insight.state === ComputationState.READY) {
          setReport(insight.report ?? null);
          break;
        }
        if (insight.state === ComputationState.FAILED) throw new ConnectError(insight.failure?.message ?? "failed");
      }
    } catch (e) {
      setError(failure(e));
    } finally {
      setBusy(false);
    }
  };
  // Percentiles of each measured column (characters, tokens, …) as bars.
  const measured = Object.entries(report ?? {}).filter(
    ([, v]) => v !== null && typeof v === "object" && typeof (v as Record<string, unknown>)["p50"] === "number",
  ) as [string, Record<string, number>][];
  return (
    <>
      <h3>{t("insight")}</h3>
      <ErrorBox error={error} />
      {!report && (
        <button type="button" onClick={compute} disabled={busy}>
          {busy ? t("loading") : t("compute")}
        </button>
      )}
      {report && measured.length > 0 && (
        <BarChart
          label={t("insight")}
          bars={measured.flatMap(([column, stats]) =>
            ["p50", "p90", "max"].filter((k) => typeof stats[k] === "number").map((k) => ({ label: `${column} ${k}`, value: stats[k] })),
          )}
        />
      )}
      {report && <details><summary>JSON</summary><pre>{JSON.stringify(report, null, 1)}</pre></details>}
    </>
  );
}

function MixingPlan({ api }: { api: Api }) {
  const { t } = useT();
  const [sources, setSources] = useState<{ version: string; rate: string }[]>([{ version: "", rate: "1" }]);
  const [plan, setPlan] = useState<MixturePlan | null>(null);
  const [into, setInto] = useState("");
  const [mixed, setMixed] = useState<DatasetVersion | null>(null);
  const [error, setError] = useState<Failure | null>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      setPlan(
        await api.data.planMixture({
          parent: api.parent,
          sources: refs(),
        }),
      );
    } catch (e) {
      setError(failure(e));
    }
  };
  const refs = () =>
    sources.map((s) => ({ datasetVersion: versionName(api, s.version), samplingRate: Number(s.rate) }));
  const materialize = async () => {
    setError(null);
    try {
      const parent = `${api.parent}/datasets/${into}`;
      try {
        await api.data.getDataset({ name: parent });
      } catch (e) {
        if (ConnectError.from(e).code !== Code.NotFound || !plan) throw e;
        await api.data.createDataset({ parent: api.parent, datasetId: into, dataset: { kind: plan.kind }, requestId: requestId() });
      }
      let made = await api.data.createMixture({ parent, sources: refs(), requestId: requestId() });
      for await (const update of api.data.watchDatasetVersion({ name: made.name })) {
        made = update;
        if (update.state !== DatasetVersionState.PROCESSING) break;
      }
      setMixed(made);
    } catch (e) {
      setError(failure(e));
    }
  };
  const update = (i: number, change: Partial<{ version: string; rate: string }>) =>
    setSources(sources.map((s, j) => (j === i ? { ...s, ...change } : s)));
  return (
    <form className="card" onSubmit={submit} aria-labelledby="mix-title">
      <h2 id="mix-title">{t("mixing")}</h2>
      {sources.map((s, i) => (
        <div className="inline-form" key={i}>
          <Field id={`mix-version-${i}`} label={`${t("version")} ${i + 1}`}>
            <input id={`mix-version-${i}`} value={s.version} placeholder="essay-grading-train/1" onChange={(e) => update(i, { version: e.target.value })} required />
          </Field>
          <Field id={`mix-rate-${i}`} label={t("rate")}>
            <input id={`mix-rate-${i}`} value={s.rate} inputMode="decimal" onChange={(e) => update(i, { rate: e.target.value })} required />
          </Field>
        </div>
      ))}
      <button type="button" className="secondary" onClick={() => setSources([...sources, { version: "", rate: "1" }])}>
        {t("addSource")}
      </button>{" "}
      <button type="submit">{t("plan")}</button>
      <ErrorBox error={error} />
      {plan && (
        <Table
          label={t("mixing")}
          head={[t("mixDataset"), t("mixChars"), t("mixSamples"), t("mixRate"), t("mixShare")]}
          rows={plan.sources.map((s) => [
            versionText(api, s.source?.datasetVersion ?? ""),
            String(s.characters),
            String(s.samples),
            String(s.source?.samplingRate ?? 0),
            `${(s.share * 100).toFixed(1)}%`,
          ])}
        />
      )}
      {plan && (
        <div className="inline-form">
          <Field id="mix-into" label={t("mixInto")}>
            <input id="mix-into" value={into} onChange={(e) => setInto(e.target.value)} placeholder="my-mixture" />
          </Field>
          <button type="button" disabled={!into} onClick={materialize}>
            {t("materialize")}
          </button>
        </div>
      )}
      {mixed && <VersionSummary version={mixed} />}
    </form>
  );
}
