// 模型调优: jobs, the form (表单式开发) with the seed's hyperparameter guidance beside each field, and
// a job's page: the live loss and learning rate, the diagnosis, checkpoints, cancel.
import { useCallback, useEffect, useMemo, useRef, useState, type FormEvent } from "react";
import type { Nav } from "../App";
import { date, failure, requestId, short, versionName, type Api, type Failure } from "../api";
import { DatasetKind, DatasetVersionState, type DatasetVersion } from "../gen/tuneforge/data/v1/dataset_pb";
import {
  TrainingJobState,
  TrainingMethod,
  TuningMode,
  type Checkpoint,
  type MetricPoint,
  type TrainingJob,
  type TrainingReport,
} from "../gen/tuneforge/train/v1/training_job_pb";
import { guidance, useT } from "../i18n";
import { AdvancedSettings, advancedHyperparameters, emptyAdvanced, emptyMethodForm, emptyResources, methodParameters, MethodSettings, ResourceSettings, resources, type AdvancedForm, type MethodForm, type ResourcesForm } from "./JobSettings";
import { ErrorBox, Field, LineChart, Loading, NavLink, StateBadge, Table, useAsync, useStream, violationFor } from "../ui";

const FINAL = [TrainingJobState.SUCCEEDED, TrainingJobState.FAILED, TrainingJobState.CANCELLED];

// The methods each kind of data trains (the form offers only these).
const METHODS_BY_KIND: Record<number, TrainingMethod[]> = {
  [DatasetKind.TEXT]: [TrainingMethod.POST_PRETRAIN],
  [DatasetKind.SFT]: [TrainingMethod.SFT],
  [DatasetKind.PREFERENCE]: [TrainingMethod.DPO, TrainingMethod.ORPO, TrainingMethod.REWARD_MODEL],
  [DatasetKind.UNPAIRED_PREFERENCE]: [TrainingMethod.KTO],
  [DatasetKind.PROMPT_ONLY]: [TrainingMethod.GRPO],
};
const ALL_METHODS = Object.values(METHODS_BY_KIND).flat();

// The guided hyperparameters: (field in the API, field in the message, input step).
const GUIDED: [string, string, string][] = [
  ["epochs", "epochs", "any"],
  ["learning_rate", "learningRate", "any"],
  ["batch_size", "batchSize", "1"],
  ["max_sequence_length", "maxSequenceLength", "1"],
  ["checkpoint_count", "checkpointCount", "1"],
  ["checkpoint_interval_steps", "checkpointIntervalSteps", "1"],
  ["validation_interval_steps", "validationIntervalSteps", "1"],
];

export function TrainingPage({ api, nav }: { api: Api; nav: Nav }) {
  const job = nav.path.match(/^\/training\/jobs\/([^/]+)/)?.[1];
  if (job) return <JobPage key={job} api={api} id={decodeURIComponent(job)} nav={nav} />;
  if (nav.path.startsWith("/training/new")) return <JobForm api={api} nav={nav} preset={nav.query.get("preset") ?? ""} />;
  return <JobList api={api} nav={nav} />;
}

function JobList({ api, nav }: { api: Api; nav: Nav }) {
  const { t } = useT();
  const jobs = useAsync(() => api.train.listTrainingJobs({ parent: api.parent, pageSize: 50 }), [api]);
  return (
    <section>
      <h1>{t("training")}</h1>
      <button type="button" onClick={() => nav.go("/training/new")}>
        {t("newJob")}
      </button>
      <ErrorBox error={jobs.error} />
      <Loading loading={jobs.loading && !jobs.value} />
      {jobs.value && (
        <Table
          label={t("jobs")}
          head={[t("name"), t("method"), t("state"), t("progress"), t("created")]}
          rows={jobs.value.trainingJobs.map((j) => [
            <NavLink nav={nav} to={`/training/jobs/${short(j.name)}`}>
              {j.displayName || short(j.name)}
            </NavLink>,
            TrainingMethod[j.trainingMethod].toLowerCase(),
            <StateBadge state={TrainingJobState[j.state]} />,
            `${j.currentStep}/${j.totalSteps}`,
            date(j.createTime),
          ])}
        />
      )}
    </section>
  );
}

type Form = {
  jobId: string;
  method: TrainingMethod;
  baseModel: string;
  data: { version: string; rate: string }[];
  tuning: TuningMode;
  hp: Record<string, string>;
  validationSplit: string;
  lora: { rank: number; alpha: number } | null;
};

function JobForm({ api, nav, preset }: { api: Api; nav: Nav; preset: string }) {
  const { t, lang } = useT();
  const [form, setForm] = useState<Form>({
    jobId: "",
    method: TrainingMethod.SFT,
    baseModel: "",
    data: [{ version: "", rate: "1" }],
    tuning: TuningMode.LORA,
    hp: { epochs: "3", learning_rate: "0.0003", batch_size: "16" },
    validationSplit: "",
    lora: null,
  });
  const [kind, setKind] = useState<DatasetKind | null>(null);
  const [methodForm, setMethodForm] = useState<MethodForm>(emptyMethodForm);
  const [resourceForm, setResourceForm] = useState<ResourcesForm>(emptyResources);
  const [advanced, setAdvanced] = useState<AdvancedForm>(emptyAdvanced);
  const [error, setError] = useState<Failure | null>(null);
  const [busy, setBusy] = useState(false);
  // Each source's state: a version still being processed cannot train yet (the server refuses it),
  // so the form waits for it and says so.
  const [states, setStates] = useState<Record<string, DatasetVersionState>>({});
  const onState = useCallback((version: string, state: DatasetVersionState) => setStates((s) => ({ ...s, [version]: state })), []);
  const processing = form.data.some((d) => states[d.version] === DatasetVersionState.PROCESSING);
  const models = useAsync(() => api.registry.listModels({ parent: api.parent, pageSize: 100 }), [api]);
  // A template fills the form: its data (installed into the project), method and hyperparameters.
  const template = useAsync(
    async () => (preset ? api.data.installPreset({ parent: api.parent, preset: `presets/${preset}`, requestId: `console-${preset}` }) : null),
    [api, preset],
  );
  useEffect(() => {
    const installed = template.value;
    if (!installed?.preset) return;
    const train = installed.datasetVersions.find((v) => !v.name.includes("-eval/")) ?? installed.datasetVersions[0];
    const hp: Record<string, string> = {};
    for (const [key, value] of Object.entries(installed.hyperparameters ?? installed.preset.hyperparameters ?? {})) {
      if (typeof value === "number" || typeof value === "string") hp[key] = String(value);
    }
    const method = TrainingMethod[installed.preset.method.toUpperCase() as keyof typeof TrainingMethod] ?? TrainingMethod.SFT;
    const numbers = installed.hyperparameters ?? {};
    setForm((f) => ({
      ...f,
      method,
      data: train ? [{ version: train.name, rate: "1" }] : f.data,
      hp: { ...f.hp, ...hp },
      tuning: numbers["tuning"] === "full" ? TuningMode.FULL : TuningMode.LORA,
      // Validation every N steps needs held-out rows: 10% of the training data, as the quickstart does.
      validationSplit: Number(numbers["validation_interval_steps"] ?? 0) > 0 ? "0.1" : f.validationSplit,
      lora: typeof numbers["lora_rank"] === "number" ? { rank: numbers["lora_rank"] as number, alpha: Number(numbers["lora_alpha"] ?? 0) } : f.lora,
    }));
  }, [template.value]);
  // The data decides the methods on offer.
  const firstVersion = form.data[0]?.version ?? "";
  useEffect(() => {
    if (!firstVersion.includes("/")) return setKind(null);
    const dataset = versionName(api, firstVersion).split("/versions/")[0];
    api.data.getDataset({ name: dataset }).then((d) => setKind(d.kind), () => setKind(null));
  }, [api, firstVersion]);
  const methods = kind !== null && METHODS_BY_KIND[kind] ? METHODS_BY_KIND[kind] : ALL_METHODS;
  useEffect(() => {
    if (!methods.includes(form.method)) setForm((f) => ({ ...f, method: methods[0] }));
  }, [methods, form.method]);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const hyperparameters: Record<string, number> = {};
    for (const [apiField, messageField] of GUIDED) {
      if (form.hp[apiField] !== undefined && form.hp[apiField] !== "") hyperparameters[messageField] = Number(form.hp[apiField]);
    }
    try {
      const job = await api.train.createTrainingJob({
        parent: api.parent,
        trainingJobId: form.jobId,
        requestId: requestId(),
        trainingJob: {
          baseModel: form.baseModel,
          trainingMethod: form.method,
          tuningMode: form.tuning,
          trainingData: form.data.map((d) => ({ datasetVersion: versionName(api, d.version), samplingRate: Number(d.rate) })),
          hyperparameters: { ...hyperparameters, ...advancedHyperparameters(advanced) },
          validationSplit: form.validationSplit ? Number(form.validationSplit) : 0,
          lora: form.tuning !== TuningMode.FULL && form.lora ? form.lora : undefined,
          methodParameters: methodParameters(form.method, methodForm),
          resources: resources(resourceForm),
        },
      });
      nav.go(`/training/jobs/${short(job.name)}`);
    } catch (e) {
      setError(failure(e));
    } finally {
      setBusy(false);
    }
  };
  const set = (change: Partial<Form>) => setForm({ ...form, ...change });
  const baseOptions = useMemo(() => (models.value?.models ?? []).filter((m) => m.latestVersion).map((m) => m.latestVersion), [models.value]);
  return (
    <section>
      <h1>{t("newJob")}</h1>
      {preset && <p className="notice">{preset}</p>}
      <ErrorBox error={template.error} />
      <form className="card training-form" onSubmit={submit} noValidate>
        <Field id="job-id" label={t("jobId")} error={violationFor(error, "training_job_id")}>
          <input id="job-id" value={form.jobId} onChange={(e) => set({ jobId: e.target.value })} placeholder="essay-lora-1" />
        </Field>
        <Field id="job-base" label={t("baseModel")} error={violationFor(error, "base_model")}>
          <input id="job-base" list="base-models" value={form.baseModel} onChange={(e) => set({ baseModel: e.target.value })} required />
          <datalist id="base-models">
            {baseOptions.map((v) => (
              <option key={v} value={v} />
            ))}
          </datalist>
        </Field>
        {form.data.map((d, i) => (
          <div className="inline-form" key={i}>
            <Field id={`job-data-${i}`} label={`${t("trainingData")} ${i + 1}`} error={violationFor(error, i === 0 ? "training_data" : `training_data[${i}]`)}>
              <input id={`job-data-${i}`} value={d.version} onChange={(e) => set({ data: form.data.map((x, j) => (j === i ? { ...x, version: e.target.value } : x)) })} required />
              <VersionState api={api} version={d.version} index={i} onState={onState} />
            </Field>
            <Field id={`job-rate-${i}`} label={t("rate")} error={violationFor(error, `training_data[${i}].sampling_rate`)}>
              <input id={`job-rate-${i}`} value={d.rate} inputMode="decimal" onChange={(e) => set({ data: form.data.map((x, j) => (j === i ? { ...x, rate: e.target.value } : x)) })} />
            </Field>
          </div>
        ))}
        <button type="button" className="secondary" onClick={() => set({ data: [...form.data, { version: "", rate: "1" }] })}>
          {t("addSource")}
        </button>
        <Field id="job-method" label={t("method")} error={violationFor(error, "training_method")}>
          <select id="job-method" value={form.method} onChange={(e) => set({ method: Number(e.target.value) })}>
            {methods.map((m) => (
              <option key={m} value={m}>
                {TrainingMethod[m].toLowerCase()}
              </option>
            ))}
          </select>
        </Field>
        <Field id="job-tuning" label={t("tuning")} error={violationFor(error, "tuning_mode")}>
          <select id="job-tuning" value={form.tuning} onChange={(e) => set({ tuning: Number(e.target.value) })}>
            <option value={TuningMode.LORA}>LoRA</option>
            <option value={TuningMode.FULL}>full</option>
            <option value={TuningMode.QLORA}>QLoRA (CUDA)</option>
          </select>
        </Field>
        <Field id="job-validation" label={t("validationSplit")} error={violationFor(error, "validation_split")}>
          <input id="job-validation" type="number" step="any" value={form.validationSplit} placeholder="0.1" onChange={(e) => set({ validationSplit: e.target.value })} />
        </Field>
        <MethodSettings method={form.method} form={methodForm} onChange={setMethodForm} error={error} />
        <ResourceSettings api={api} form={resourceForm} onChange={setResourceForm} error={error} />
        <h2>{t("hyperparameters")}</h2>
        {GUIDED.map(([field, , step]) => {
          const g = guidance[lang][field];
          return (
            <Field
              key={field}
              id={`hp-${field}`}
              label={field}
              error={violationFor(error, `hyperparameters.${field}`)}
              help={
                g && (
                  <details className="guidance">
                    <summary>
                      {g.meaning} <strong>{t("recommended")}: {g.recommended}</strong>
                    </summary>
                    <dl>
                      <dt>{t("tooLarge")}</dt>
                      <dd>{g.tooLarge}</dd>
                      <dt>{t("tooSmall")}</dt>
                      <dd>{g.tooSmall}</dd>
                      <dt>{t("recommended")}</dt>
                      <dd>{g.recommended}</dd>
                    </dl>
                  </details>
                )
              }
            >
              <input
                id={`hp-${field}`}
                type="number"
                step={step}
                value={form.hp[field] ?? ""}
                aria-invalid={Boolean(violationFor(error, `hyperparameters.${field}`))}
                onChange={(e) => set({ hp: { ...form.hp, [field]: e.target.value } })}
              />
            </Field>
          );
        })}
        <AdvancedSettings form={advanced} onChange={setAdvanced} error={error} />
        <ErrorBox error={error} />
        {processing && (
          <p className="notice" role="status">
            {t("dataProcessing")}
          </p>
        )}
        <button type="submit" disabled={busy || processing}>
          {t("start")}
        </button>
      </form>
    </section>
  );
}

// A data version's state beside its field, followed live (Watch yields the version now, then each
// change until it is READY or FAILED).
async function* nothing(): AsyncIterable<DatasetVersion> {}

function VersionState({ api, version, index, onState }: { api: Api; version: string; index: number; onState: (version: string, state: DatasetVersionState) => void }) {
  const [seen, setSeen] = useState<{ version: string; value: DatasetVersion } | null>(null);
  const named = version.includes("/versions/") || /^[^/]+\/\d+$/.test(version);
  // No such version (yet): nothing is shown; the server names the field when the form is sent.
  const failed = useStream(
    (signal) => (named ? api.data.watchDatasetVersion({ name: versionName(api, version) }, { signal }) : nothing()),
    (value) => {
      setSeen({ version, value });
      onState(version, value.state);
    },
    [api, version],
  );
  if (failed || seen?.version !== version) return null;
  return (
    <span className="version-state" data-testid={`data-state-${index}`}>
      <StateBadge state={DatasetVersionState[seen.value.state]} /> {seen.value.failure?.message}
    </span>
  );
}

function JobPage({ api, id, nav }: { api: Api; id: string; nav: Nav }) {
  const { t } = useT();
  const name = `${api.parent}/trainingJobs/${id}`;
  const [job, setJob] = useState<TrainingJob | null>(null);
  const [points, setPoints] = useState<MetricPoint[]>([]);
  const [error, setError] = useState<Failure | null>(null);
  const [report, setReport] = useState<TrainingReport | null>(null);
  const [checkpoints, setCheckpoints] = useState<Checkpoint[]>([]);
  const [registered, setRegistered] = useState<Record<string, string>>({});
  const seen = useRef(new Set<string>());
  const streamError = useStream(
    (signal) => api.train.watchTrainingJob({ name }, { signal }),
    (update) => {
      if (update.update.case === "trainingJob") setJob(update.update.value);
      if (update.update.case === "metricPoint") {
        const point = update.update.value;
        const key = `${point.step}:${point.hasValidationLoss}`;
        if (!seen.current.has(key)) {
          seen.current.add(key);
          setPoints((p) => [...p, point]);
        }
      }
    },
    [api, name],
  );
  const finished = job !== null && FINAL.includes(job.state);
  useEffect(() => {
    if (!finished) return;
    api.train.getTrainingReport({ name }).then(setReport, (e) => setError(failure(e)));
    api.train.listCheckpoints({ parent: name }).then((r) => setCheckpoints(r.checkpoints), () => undefined);
  }, [api, name, finished]);
  const cancel = async () => {
    try {
      setJob(await api.train.cancelTrainingJob({ name }));
    } catch (e) {
      setError(failure(e));
    }
  };
  const register = async (checkpoint: string) => {
    try {
      const made = await api.train.registerCheckpoint({ name: checkpoint, requestId: requestId() });
      setRegistered({ ...registered, [checkpoint]: made.modelVersion });
    } catch (e) {
      setError(failure(e));
    }
  };
  const train = points.filter((p) => !p.hasValidationLoss).map((p): [number, number] => [Number(p.step), p.loss]);
  const validation = points.filter((p) => p.hasValidationLoss).map((p): [number, number] => [Number(p.step), p.validationLoss]);
  const rates = points.filter((p) => !p.hasValidationLoss && p.learningRate > 0).map((p): [number, number] => [Number(p.step), p.learningRate]);
  const diagnosis = report?.diagnosis;
  return (
    <section>
      <h1>
        {t("training")}: {id}
      </h1>
      <ErrorBox error={error ?? streamError} />
      {!job && <Loading loading />}
      {job && (
        <div className="card job-head" data-testid="job-state">
          <StateBadge state={TrainingJobState[job.state]} /> {t("step")} {String(job.currentStep)}/{String(job.totalSteps)} ·{" "}
          {TrainingMethod[job.trainingMethod].toLowerCase()} · {job.baseModel}
          {job.waitingReason && <p className="muted">{t("waiting")}: {job.waitingReason}</p>}
          {job.error?.message && <p className="error">{job.error.reason}: {job.error.message}</p>}
          {job.finalModelVersion && (
            <p>
              {t("modelVersion")}:{" "}
              <NavLink nav={nav} to={`/models/${job.finalModelVersion.split("/")[3]}`}>
                {job.finalModelVersion}
              </NavLink>
            </p>
          )}
          {!finished && (
            <button type="button" className="danger" onClick={cancel}>
              {t("cancel")}
            </button>
          )}
        </div>
      )}
      <article className="card">
        <h2>{t("loss")}</h2>
        <LineChart
          label={t("loss")}
          xLabel={t("step")}
          series={[
            { name: t("trainingLoss"), color: "#3a6ea5", points: train },
            { name: t("validationLoss"), color: "#d9822b", points: validation },
          ]}
        />
        <h2>{t("learningRate")}</h2>
        <LineChart label={t("learningRate")} xLabel={t("step")} height={160} series={[{ name: t("learningRate"), color: "#5b8c5a", points: rates }]} />
      </article>
      {diagnosis && (
        <article className="card" data-testid="diagnosis">
          <h2>{t("diagnosis")}</h2>
          <p>
            <strong>{diagnosis.verdict}</strong> — {diagnosis.summary}
          </p>
          <h3>{t("advice")}</h3>
          <ul>
            {diagnosis.advice.map((a) => (
              <li key={a}>{a}</li>
            ))}
          </ul>
          {diagnosis.spikes.length > 0 && (
            <>
              <h3>{t("spikes")}</h3>
              <Table
                label={t("spikes")}
                head={[t("step"), t("loss"), t("samples")]}
                rows={diagnosis.spikes.map((s) => [String(s.step), s.loss.toFixed(3), s.sampleIds.join(", ")])}
              />
            </>
          )}
        </article>
      )}
      {checkpoints.length > 0 && (
        <article className="card">
          <h2>{t("checkpoints")}</h2>
          <Table
            label={t("checkpoints")}
            head={[t("step"), t("validationLoss"), ""]}
            rows={checkpoints.map((c) => [
              `${c.step}${c.best ? " ★" : ""}`,
              c.validationLoss ? c.validationLoss.toFixed(4) : "",
              registered[c.name] ? (
                `${t("registered")} ${registered[c.name]}`
              ) : (
                <button type="button" className="secondary" onClick={() => register(c.name)}>
                  {t("registerCheckpoint")}
                </button>
              ),
            ])}
          />
        </article>
      )}
    </section>
  );
}
