// 数据增强: teachers (a deployment of the project, or any OpenAI-compatible API with its key, which
// is sent once and never shown again), runs of an operation over a dataset version, and a run's
// page: live progress, the rows dropped by reason, failed rows, the version made, cancel.
import { useState } from "react";
import type { Nav } from "../App";
import { failure, requestId, short, versionName, versionText, type Api, type Failure } from "../api";
import { AugmentationOperation, AugmentationState, type AugmentationRun, type Teacher } from "../gen/tuneforge/data/v1/augmentation_pb";
import { useT } from "../i18n";
import { BarChart, DataVersionLink, ErrorBox, Field, Loading, NavLink, StateBadge, Table, useAction, useAsync, useFields, useStream, violationFor } from "../ui";

const OPERATIONS = [
  AugmentationOperation.ANSWER,
  AugmentationOperation.PARAPHRASE,
  AugmentationOperation.SELF_INSTRUCT,
  AugmentationOperation.EVOL_INSTRUCT,
  AugmentationOperation.PREFERENCE_PAIRS,
  AugmentationOperation.TRANSLATE,
];
const FINAL = [AugmentationState.SUCCEEDED, AugmentationState.FAILED, AugmentationState.CANCELLED];
const operationName = (op: AugmentationOperation) => AugmentationOperation[op].toLowerCase();

export function AugmentationPage({ api, nav }: { api: Api; nav: Nav }) {
  const match = nav.path.match(/^\/augmentation\/([^/]+)/);
  return match ? <RunView api={api} id={match[1]} nav={nav} /> : <Runs api={api} nav={nav} />;
}

function Runs({ api, nav }: { api: Api; nav: Nav }) {
  const { t } = useT();
  const runs = useAsync(() => api.augment.listAugmentationRuns({ parent: api.parent, pageSize: 50 }), [api]);
  const teachers = useAsync(() => api.augment.listTeachers({ parent: api.parent, pageSize: 100 }), [api]);
  return (
    <section>
      <h1>{t("augmentation")}</h1>
      <div className="grid2">
        <Teachers api={api} teachers={teachers.value?.teachers} error={teachers.error} onMade={teachers.reload} />
        <NewRun api={api} nav={nav} teachers={teachers.value?.teachers.map((x) => x.name) ?? []} />
      </div>
      <h2>{t("runs")}</h2>
      <ErrorBox error={runs.error} />
      <Loading loading={runs.loading && !runs.value} />
      {runs.value && (
        <Table
          label={t("runs")}
          head={[t("name"), t("operation"), t("sourceVersion"), t("state"), t("progress"), t("kept"), t("outputVersion")]}
          rows={runs.value.augmentationRuns.map((run) => [
            <NavLink nav={nav} to={`/augmentation/${short(run.name)}`}>
              {short(run.name)}
            </NavLink>,
            operationName(run.operation),
            <code>{versionText(api, run.source)}</code>,
            <StateBadge state={AugmentationState[run.state]} />,
            `${run.progress?.rowsDone ?? 0}/${run.progress?.rowsTotal ?? 0}`,
            String(run.progress?.keptRows ?? 0),
            run.outputVersion && <DataVersionLink api={api} nav={nav} name={run.outputVersion} />,
          ])}
        />
      )}
    </section>
  );
}

function Teachers({ api, teachers, error: listError, onMade }: { api: Api; teachers?: Teacher[]; error?: Failure; onMade: () => void }) {
  const { t } = useT();
  const { form, setForm, set } = useFields({ id: "", deployment: "", baseUrl: "", model: "", apiKey: "", concurrency: "8", rpm: "" });
  const [editing, setEditing] = useState<Teacher | null>(null);
  // Refused (FAILED_PRECONDITION) while a run or an annotation task that uses it has not ended.
  const removal = useAction(async (teacher: Teacher) => {
    await api.augment.deleteTeacher({ name: teacher.name });
    if (editing?.name === teacher.name) setEditing(null);
    onMade();
  });
  const { error, busy, submit } = useAction(async () => {
    await api.augment.createTeacher({
      parent: api.parent,
      teacherId: form.id.trim(),
      requestId: requestId(),
      teacher: {
        deployment: form.deployment.trim() ? `${api.parent}/deployments/${short(form.deployment.trim())}` : "",
        baseUrl: form.baseUrl.trim(),
        model: form.model.trim(),
        apiKey: form.apiKey,
        maxConcurrency: Number(form.concurrency || 0),
        requestsPerMinute: Number(form.rpm || 0),
      },
    });
    // The key goes once; the form forgets it.
    setForm({ ...form, id: "", apiKey: "" });
    onMade();
  });
  return (
    <div className="card">
      <h2>{t("teachers")}</h2>
      <ErrorBox error={listError} />
      <ErrorBox error={removal.error} />
      {teachers && (
        <Table
          label={t("teachers")}
          head={[t("name"), t("endpoint"), t("concurrency"), t("actions")]}
          rows={teachers.map((teacher) => [
            short(teacher.name),
            teacher.deployment ? (
              <code>{short(teacher.deployment)}</code>
            ) : (
              <code>
                {teacher.baseUrl} · {teacher.model}
                {teacher.hasApiKey ? " · 🔑" : ""}
              </code>
            ),
            `${teacher.maxConcurrency}${teacher.requestsPerMinute ? ` · ${teacher.requestsPerMinute}/min` : ""}`,
            <span className="row-actions">
              <button type="button" data-testid={`teacher-edit-${short(teacher.name)}`} onClick={() => setEditing(teacher)}>
                {t("edit")}
              </button>{" "}
              <button type="button" className="danger" data-testid={`teacher-delete-${short(teacher.name)}`} onClick={() => removal.run(teacher)}>
                {t("deleteTeacher")}
              </button>
            </span>,
          ])}
        />
      )}
      {editing && (
        <TeacherEdit
          key={editing.name}
          api={api}
          teacher={editing}
          onDone={() => {
            setEditing(null);
            onMade();
          }}
        />
      )}
      <form onSubmit={submit} noValidate aria-labelledby="teacher-title">
        <h3 id="teacher-title">{t("newTeacher")}</h3>
        <Field id="teacher-id" label={t("teacherId")} error={violationFor(error, "teacher_id")}>
          <input id="teacher-id" value={form.id} onChange={(e) => set({ id: e.target.value })} placeholder="writer" required />
        </Field>
        <Field id="teacher-deployment" label={t("deploymentOfProject")} error={violationFor(error, "deployment")}>
          <input id="teacher-deployment" value={form.deployment} onChange={(e) => set({ deployment: e.target.value })} placeholder="essay-bot" />
        </Field>
        <p className="muted">{t("orOpenAiApi")}</p>
        <div className="inline-form">
          <Field id="teacher-url" label={t("baseUrl")} error={violationFor(error, "base_url")}>
            <input id="teacher-url" value={form.baseUrl} onChange={(e) => set({ baseUrl: e.target.value })} placeholder="https://api.example.com/v1" />
          </Field>
          <Field id="teacher-model" label={t("modelName")} error={violationFor(error, "model")}>
            <input id="teacher-model" value={form.model} onChange={(e) => set({ model: e.target.value })} />
          </Field>
          <Field id="teacher-key" label={t("apiKey")} error={violationFor(error, "api_key")}>
            <input id="teacher-key" type="password" value={form.apiKey} onChange={(e) => set({ apiKey: e.target.value })} autoComplete="off" />
          </Field>
        </div>
        <div className="inline-form">
          <Field id="teacher-concurrency" label={t("concurrency")} error={violationFor(error, "max_concurrency")}>
            <input id="teacher-concurrency" type="number" value={form.concurrency} onChange={(e) => set({ concurrency: e.target.value })} />
          </Field>
          <Field id="teacher-rpm" label={t("requestsPerMinute")} error={violationFor(error, "requests_per_minute")}>
            <input id="teacher-rpm" type="number" value={form.rpm} placeholder="0" onChange={(e) => set({ rpm: e.target.value })} />
          </Field>
        </div>
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {t("create")}
        </button>
      </form>
    </div>
  );
}

// Limits and the key of a teacher: the key field starts empty (the stored one is never sent back)
// and only a key typed here replaces it.
function TeacherEdit({ api, teacher, onDone }: { api: Api; teacher: Teacher; onDone: () => void }) {
  const { t } = useT();
  const { form, set } = useFields({
    concurrency: String(teacher.maxConcurrency),
    rpm: String(teacher.requestsPerMinute || ""),
    apiKey: "",
  });
  const { error, busy, submit } = useAction(async () => {
    const paths = ["max_concurrency", "requests_per_minute", ...(form.apiKey ? ["api_key"] : [])];
    await api.augment.updateTeacher({
      teacher: {
        name: teacher.name,
        maxConcurrency: Number(form.concurrency || 0),
        requestsPerMinute: Number(form.rpm || 0),
        apiKey: form.apiKey,
      },
      updateMask: { paths },
    });
    onDone();
  });
  return (
    <form onSubmit={submit} noValidate aria-labelledby="teacher-edit-title" className="subcard">
      <h3 id="teacher-edit-title">
        {t("editTeacher")} · {short(teacher.name)}
      </h3>
      <div className="inline-form">
        <Field id="edit-concurrency" label={t("concurrency")} error={violationFor(error, "max_concurrency")}>
          <input id="edit-concurrency" type="number" value={form.concurrency} onChange={(e) => set({ concurrency: e.target.value })} />
        </Field>
        <Field id="edit-rpm" label={t("requestsPerMinute")} error={violationFor(error, "requests_per_minute")}>
          <input id="edit-rpm" type="number" value={form.rpm} placeholder="0" onChange={(e) => set({ rpm: e.target.value })} />
        </Field>
        {!teacher.deployment && (
          <Field id="edit-key" label={t("newApiKey")} error={violationFor(error, "api_key")}>
            <input id="edit-key" type="password" value={form.apiKey} onChange={(e) => set({ apiKey: e.target.value })} autoComplete="off" />
          </Field>
        )}
      </div>
      <ErrorBox error={error} />
      <button type="submit" disabled={busy}>
        {t("save")}
      </button>{" "}
      <button type="button" onClick={onDone}>
        {t("cancel")}
      </button>
    </form>
  );
}

function NewRun({ api, nav, teachers }: { api: Api; nav: Nav; teachers: string[] }) {
  const { t } = useT();
  const { form, set } = useFields({
    source: nav.query.get("source") ?? "",
    operation: AugmentationOperation.ANSWER,
    teacher: "",
    judge: "",
    into: "",
    samples: "",
    count: "",
    rounds: "",
    language: "en",
    maxRows: "",
    judgeMinScore: "",
    nearDedup: "",
  });
  const op = form.operation;
  const { error, busy, submit } = useAction(async () => {
    const made = await api.augment.createAugmentationRun({
      parent: api.parent,
      requestId: requestId(),
      augmentationRun: {
        source: form.source.trim() ? versionName(api, form.source) : "",
        outputDataset: form.into.trim() ? `${api.parent}/datasets/${form.into.trim()}` : "",
        operation: op,
        teacher: form.teacher,
        judge: form.judge,
        parameters: {
          samples: Number(form.samples || 0),
          count: Number(form.count || 0),
          rounds: Number(form.rounds || 0),
          targetLanguage: op === AugmentationOperation.TRANSLATE ? form.language : "",
          maxRows: Number(form.maxRows || 0),
        },
        filters: {
          judgeMinScore: form.judgeMinScore ? Number(form.judgeMinScore) : undefined,
          nearDedupThreshold: Number(form.nearDedup || 0),
        },
      },
    });
    nav.go(`/augmentation/${short(made.name)}`);
  });
  const teacherOptions = teachers.map((name) => (
    <option key={name} value={name}>
      {short(name)}
    </option>
  ));
  return (
    <form className="card" onSubmit={submit} noValidate aria-labelledby="run-title">
      <h2 id="run-title">{t("newRun")}</h2>
      <Field id="run-source" label={t("sourceVersion")} error={violationFor(error, "source")}>
        <input id="run-source" value={form.source} onChange={(e) => set({ source: e.target.value })} placeholder="questions/1" required />
      </Field>
      <div className="inline-form">
        <Field id="run-operation" label={t("operation")} error={violationFor(error, "operation")}>
          <select id="run-operation" value={op} onChange={(e) => set({ operation: Number(e.target.value) })}>
            {OPERATIONS.map((o) => (
              <option key={o} value={o}>
                {t(`op_${operationName(o)}` as "op_answer")}
              </option>
            ))}
          </select>
        </Field>
        <Field id="run-teacher" label={t("teacher")} error={violationFor(error, "teacher")}>
          <select id="run-teacher" value={form.teacher} onChange={(e) => set({ teacher: e.target.value })} required>
            <option value="">—</option>
            {teacherOptions}
          </select>
        </Field>
        <Field id="run-judge" label={t("judge")} error={violationFor(error, "judge")}>
          <select id="run-judge" value={form.judge} onChange={(e) => set({ judge: e.target.value })}>
            <option value="">{t("theTeacher")}</option>
            {teacherOptions}
          </select>
        </Field>
      </div>
      <Field id="run-into" label={t("intoDataset")} error={violationFor(error, "output_dataset")}>
        <input id="run-into" value={form.into} onChange={(e) => set({ into: e.target.value })} placeholder="questions-answered" required />
      </Field>
      <div className="inline-form">
        {(op === AugmentationOperation.PARAPHRASE || op === AugmentationOperation.PREFERENCE_PAIRS) && (
          <Field id="run-samples" label={t("samplesPerRow")} error={violationFor(error, "samples")}>
            <input id="run-samples" type="number" value={form.samples} placeholder={op === AugmentationOperation.PARAPHRASE ? "2" : "4"} onChange={(e) => set({ samples: e.target.value })} />
          </Field>
        )}
        {op === AugmentationOperation.SELF_INSTRUCT && (
          <Field id="run-count" label={t("newPrompts")} error={violationFor(error, "count")}>
            <input id="run-count" type="number" value={form.count} onChange={(e) => set({ count: e.target.value })} />
          </Field>
        )}
        {op === AugmentationOperation.EVOL_INSTRUCT && (
          <Field id="run-rounds" label={t("rounds")} error={violationFor(error, "rounds")}>
            <input id="run-rounds" type="number" value={form.rounds} placeholder="1" onChange={(e) => set({ rounds: e.target.value })} />
          </Field>
        )}
        {op === AugmentationOperation.TRANSLATE && (
          <Field id="run-language" label={t("targetLanguage")} error={violationFor(error, "target_language")}>
            <select id="run-language" value={form.language} onChange={(e) => set({ language: e.target.value })}>
              <option value="en">English</option>
              <option value="zh">中文</option>
            </select>
          </Field>
        )}
        <Field id="run-max-rows" label={t("maxRows")} error={violationFor(error, "max_rows")}>
          <input id="run-max-rows" type="number" value={form.maxRows} placeholder="0" onChange={(e) => set({ maxRows: e.target.value })} />
        </Field>
        <Field id="run-judge-min" label={t("judgeMinScore")} error={violationFor(error, "judge_min_score")}>
          <input id="run-judge-min" type="number" step="any" value={form.judgeMinScore} placeholder="1-10" onChange={(e) => set({ judgeMinScore: e.target.value })} />
        </Field>
        <Field id="run-near-dedup" label={t("nearDedup")} error={violationFor(error, "near_dedup_threshold")}>
          <input id="run-near-dedup" type="number" step="any" value={form.nearDedup} placeholder="0.8" onChange={(e) => set({ nearDedup: e.target.value })} />
        </Field>
      </div>
      <ErrorBox error={error} />
      <button type="submit" disabled={busy}>
        {t("startRun")}
      </button>
    </form>
  );
}

function RunView({ api, id, nav }: { api: Api; id: string; nav: Nav }) {
  const { t } = useT();
  const name = `${api.parent}/augmentationRuns/${id}`;
  const [run, setRun] = useState<AugmentationRun | null>(null);
  const [error, setError] = useState<Failure | null>(null);
  const streamError = useStream((signal) => api.augment.watchAugmentationRun({ name }, { signal }), setRun, [api, name]);
  const cancel = async () => {
    try {
      setRun(await api.augment.cancelAugmentationRun({ name }));
    } catch (e) {
      setError(failure(e));
    }
  };
  const p = run?.progress;
  return (
    <section>
      <h1>
        {t("augmentation")}: {id}
      </h1>
      <ErrorBox error={error ?? streamError} />
      {!run && <Loading loading />}
      {run && (
        <>
          <div className="card" data-testid="run-state">
            <p>
              <StateBadge state={AugmentationState[run.state]} /> {t(`op_${operationName(run.operation)}` as "op_answer")} ·{" "}
              <code>{versionText(api, run.source)}</code> → <code>{short(run.outputDataset)}</code> · {t("teacher")}{" "}
              <code>{short(run.teacher)}</code>
            </p>
            {run.failure && (
              <p className="error" role="alert">
                {run.failure.message}
              </p>
            )}
            {run.outputVersion && (
              <p className="notice">
                {t("outputVersion")}: <DataVersionLink api={api} nav={nav} name={run.outputVersion} />
              </p>
            )}
            <progress max={Number(p?.rowsTotal ?? 0) || 1} value={Number(p?.rowsDone ?? 0)} aria-label={t("progress")} />
            <dl className="facts">
              <dt>{t("rows")}</dt>
              <dd data-testid="run-rows">
                {String(p?.rowsDone ?? 0)}/{String(p?.rowsTotal ?? 0)} ({t("failedRows")} {String(p?.rowsFailed ?? 0)})
              </dd>
              <dt>{t("generated")}</dt>
              <dd>{String(p?.generatedRows ?? 0)}</dd>
              <dt>{t("kept")}</dt>
              <dd data-testid="run-kept">{String(p?.keptRows ?? 0)}</dd>
              <dt>{t("calls")}</dt>
              <dd>
                {String(p?.calls ?? 0)} ({t("cached")} {String(p?.cachedCalls ?? 0)}, {t("retries")} {String(p?.retries ?? 0)})
              </dd>
              <dt>tokens</dt>
              <dd>
                {String(p?.promptTokens ?? 0)} + {String(p?.completionTokens ?? 0)}
                {p?.costEstimate ? ` · ≈ ${p.costEstimate.toFixed(4)}` : ""}
              </dd>
            </dl>
            {!FINAL.includes(run.state) && (
              <button type="button" className="danger" onClick={cancel}>
                {t("cancel")}
              </button>
            )}
            {run.rejects?.url && (
              <p>
                <a href={run.rejects.url}>{t("rejectsFile")}</a>
              </p>
            )}
          </div>
          {Object.keys(p?.droppedByReason ?? {}).length > 0 && (
            <div className="card">
              <h2>{t("droppedByReason")}</h2>
              <BarChart label={t("droppedByReason")} bars={Object.entries(p?.droppedByReason ?? {}).map(([label, n]) => ({ label, value: Number(n) }))} />
            </div>
          )}
          {run.errorExamples.length > 0 && (
            <div className="card">
              <h2>{t("failedRows")}</h2>
              <Table
                label={t("failedRows")}
                head={["row", t("reason"), t("message")]}
                rows={run.errorExamples.map((e) => [<code>{e.rowId}</code>, e.reason, <span className="clip">{e.message}</span>])}
              />
            </div>
          )}
          {Object.keys(run.templates).length > 0 && (
            <details className="card">
              <summary>{t("templatesUsed")}</summary>
              {Object.entries(run.templates).map(([key, text]) => (
                <div key={key}>
                  <h3>{key}</h3>
                  <pre className="answer">{text}</pre>
                </div>
              ))}
            </details>
          )}
        </>
      )}
    </section>
  );
}
