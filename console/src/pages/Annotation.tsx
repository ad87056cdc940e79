// 智能标注: annotation tasks. A model pre-labels each row (or people label alone); reviewers accept,
// edit or reject each item under their own name; the page follows the task, shows the agreement
// between the model and people and among people, and finishing writes a dataset version.
import type { JsonObject, JsonValue } from "@bufbuild/protobuf";
import { Fragment, useCallback, useEffect, useState } from "react";
import type { Nav } from "../App";
import { failure, requestId, short, versionName, versionText, type Api, type Failure } from "../api";
import {
  AnnotationItemStatus,
  AnnotationKind,
  AnnotationState,
  ReviewAction,
  type AnnotationItem,
  type AnnotationTask,
  type AnnotationValue,
} from "../gen/tuneforge/data/v1/augmentation_pb";
import { useT } from "../i18n";
import { DataVersionLink, ErrorBox, Field, Loading, NavLink, StateBadge, Table, useAction, useAsync, useFields, useStream, violationFor } from "../ui";

const KINDS = [AnnotationKind.SCORE, AnnotationKind.LABEL, AnnotationKind.CORRECTION, AnnotationKind.CHOICE];
// Items can be reviewed once pre-labelling is over (a FAILED task keeps what was labelled).
const REVIEWABLE = [AnnotationState.REVIEWING, AnnotationState.FAILED];
const ANNOTATOR_KEY = "tuneforge.annotator";

const kindName = (kind: AnnotationKind) => AnnotationKind[kind].toLowerCase();
const percent = (share: number) => `${(share * 100).toFixed(1)}%`;

export function AnnotationPage({ api, nav }: { api: Api; nav: Nav }) {
  const match = nav.path.match(/^\/annotation\/([^/]+)/);
  return match ? <TaskView api={api} id={match[1]} nav={nav} /> : <TaskList api={api} nav={nav} />;
}

function TaskList({ api, nav }: { api: Api; nav: Nav }) {
  const { t } = useT();
  const tasks = useAsync(() => api.augment.listAnnotationTasks({ parent: api.parent, pageSize: 50 }), [api]);
  const teachers = useAsync(() => api.augment.listTeachers({ parent: api.parent, pageSize: 100 }), [api]);
  const { form, set } = useFields({
    id: "",
    source: nav.query.get("source") ?? "",
    kind: AnnotationKind.SCORE,
    instructions: "",
    labels: "good, bad",
    low: "1",
    high: "5",
    teacher: "",
    maxRows: "",
  });
  const { error, busy, submit } = useAction(async () => {
    const made = await api.augment.createAnnotationTask({
      parent: api.parent,
      annotationTaskId: form.id.trim(),
      requestId: requestId(),
      annotationTask: {
        source: form.source.trim() ? versionName(api, form.source) : "",
        kind: form.kind,
        instructions: form.instructions,
        labels: form.kind === AnnotationKind.LABEL ? form.labels.split(",").map((l) => l.trim()).filter(Boolean) : [],
        scoreMin: form.kind === AnnotationKind.SCORE ? Number(form.low) : 0,
        scoreMax: form.kind === AnnotationKind.SCORE ? Number(form.high) : 0,
        teacher: form.teacher,
        maxRows: Number(form.maxRows || 0),
      },
    });
    nav.go(`/annotation/${short(made.name)}`);
  });
  return (
    <section>
      <h1>{t("annotation")}</h1>
      <form className="card" onSubmit={submit} noValidate>
        <h2>{t("newAnnotationTask")}</h2>
        <div className="inline-form">
          <Field id="task-id" label={t("taskId")} error={violationFor(error, "annotation_task_id")}>
            <input id="task-id" value={form.id} onChange={(e) => set({ id: e.target.value })} placeholder="grade-essays" />
          </Field>
          <Field id="task-source" label={t("sourceVersion")} error={violationFor(error, "source")}>
            <input id="task-source" value={form.source} onChange={(e) => set({ source: e.target.value })} placeholder="essays/1" required />
          </Field>
          <Field id="task-kind" label={t("annotationKind")} error={violationFor(error, "kind")}>
            <select id="task-kind" value={form.kind} onChange={(e) => set({ kind: Number(e.target.value) })}>
              {KINDS.map((k) => (
                <option key={k} value={k}>
                  {t(`kind_${kindName(k)}` as "kind_score")}
                </option>
              ))}
            </select>
          </Field>
          <Field id="task-teacher" label={t("preLabelWith")} error={violationFor(error, "teacher")}>
            <select id="task-teacher" value={form.teacher} onChange={(e) => set({ teacher: e.target.value })}>
              <option value="">{t("peopleOnly")}</option>
              {teachers.value?.teachers.map((teacher) => (
                <option key={teacher.name} value={teacher.name}>
                  {teacher.displayName || short(teacher.name)}
                </option>
              ))}
            </select>
          </Field>
        </div>
        {form.kind === AnnotationKind.LABEL && (
          <Field id="task-labels" label={t("labelsComma")} error={violationFor(error, "labels")}>
            <input id="task-labels" value={form.labels} onChange={(e) => set({ labels: e.target.value })} />
          </Field>
        )}
        {form.kind === AnnotationKind.SCORE && (
          <div className="inline-form">
            <Field id="task-low" label={t("scoreMin")} error={violationFor(error, "score_min")}>
              <input id="task-low" type="number" value={form.low} onChange={(e) => set({ low: e.target.value })} />
            </Field>
            <Field id="task-high" label={t("scoreMax")} error={violationFor(error, "score_max")}>
              <input id="task-high" type="number" value={form.high} onChange={(e) => set({ high: e.target.value })} />
            </Field>
          </div>
        )}
        <Field id="task-instructions" label={t("instructions")} error={violationFor(error, "instructions")}>
          <textarea id="task-instructions" rows={2} value={form.instructions} onChange={(e) => set({ instructions: e.target.value })} />
        </Field>
        <Field id="task-max-rows" label={t("maxRows")} error={violationFor(error, "max_rows")}>
          <input id="task-max-rows" type="number" value={form.maxRows} placeholder="0" onChange={(e) => set({ maxRows: e.target.value })} />
        </Field>
        <ErrorBox error={error} />
        <button type="submit" disabled={busy}>
          {t("create")}
        </button>
      </form>
      <ErrorBox error={tasks.error} />
      <Loading loading={tasks.loading && !tasks.value} />
      {tasks.value && (
        <Table
          label={t("annotation")}
          head={[t("name"), t("annotationKind"), t("sourceVersion"), t("state"), t("reviewed"), t("modelAgreement")]}
          rows={tasks.value.annotationTasks.map((task) => [
            <NavLink nav={nav} to={`/annotation/${short(task.name)}`}>
              {short(task.name)}
            </NavLink>,
            t(`kind_${kindName(task.kind)}` as "kind_score"),
            <code>{versionText(api, task.source)}</code>,
            <StateBadge state={AnnotationState[task.state]} />,
            `${task.progress?.reviewed ?? 0}/${task.progress?.items ?? 0}`,
            task.agreement?.modelReviews ? percent(task.agreement.modelAgreement) : "—",
          ])}
        />
      )}
    </section>
  );
}

function TaskView({ api, id, nav }: { api: Api; id: string; nav: Nav }) {
  const { t } = useT();
  const name = `${api.parent}/annotationTasks/${id}`;
  const [task, setTask] = useState<AnnotationTask | null>(null);
  const streamError = useStream((signal) => api.augment.watchAnnotationTask({ name }, { signal }), setTask, [api, name]);
  const [annotator, setAnnotator] = useState(localStorage.getItem(ANNOTATOR_KEY) ?? "");
  const [status, setStatus] = useState("");
  const [items, setItems] = useState<AnnotationItem[]>([]);
  const [next, setNext] = useState("");
  const [error, setError] = useState<Failure | null>(null);
  const reviewable = task !== null && REVIEWABLE.includes(task.state);
  const settled = task !== null && task.state !== AnnotationState.PENDING && task.state !== AnnotationState.LABELLING;
  const load = useCallback(
    async (token: string) => {
      try {
        const page = await api.augment.listAnnotationItems({ parent: name, pageSize: 20, pageToken: token, filter: status ? `status = "${status}"` : "" });
        setItems((before) => (token ? [...before, ...page.annotationItems] : page.annotationItems));
        setNext(page.nextPageToken);
      } catch (e) {
        setError(failure(e));
      }
    },
    [api, name, status],
  );
  useEffect(() => {
    if (settled) load("");
  }, [settled, load]);
  const reviewed = async (item: AnnotationItem) => {
    setItems((before) => before.map((i) => (i.name === item.name ? item : i)));
    api.augment.getAnnotationTask({ name }).then(setTask, (e) => setError(failure(e)));
  };
  const rememberAnnotator = (value: string) => {
    setAnnotator(value);
    localStorage.setItem(ANNOTATOR_KEY, value);
  };
  return (
    <section>
      <h1>
        {t("annotation")}: {id}
      </h1>
      <ErrorBox error={error ?? streamError} />
      {!task && <Loading loading />}
      {task && (
        <>
          <TaskSummary api={api} task={task} nav={nav} onCancelled={setTask} onError={setError} />
          {reviewable && <Finish api={api} task={task} onFinished={setTask} />}
          <div className="card inline-form">
            <Field id="annotator" label={t("annotator")}>
              <input id="annotator" value={annotator} onChange={(e) => rememberAnnotator(e.target.value)} placeholder="ana" autoComplete="off" />
            </Field>
            <Field id="item-filter" label={t("show")}>
              <select id="item-filter" value={status} onChange={(e) => setStatus(e.target.value)}>
                <option value="">{t("allItems")}</option>
                <option value="unreviewed">{t("status_unreviewed")}</option>
                <option value="kept">{t("status_kept")}</option>
                <option value="rejected">{t("status_rejected")}</option>
              </select>
            </Field>
          </div>
          {!settled && <p className="muted">{t("preLabelling")}</p>}
          {settled && items.length === 0 && <p className="muted">{t("none")}</p>}
          {items.map((item) => (
            <ItemCard key={item.name} api={api} task={task} item={item} annotator={annotator} open={reviewable} onReviewed={reviewed} />
          ))}
          {next && (
            <button type="button" className="secondary" onClick={() => load(next)}>
              {t("more")}
            </button>
          )}
        </>
      )}
    </section>
  );
}

function TaskSummary(props: { api: Api; task: AnnotationTask; nav: Nav; onCancelled: (task: AnnotationTask) => void; onError: (error: Failure) => void }) {
  const { api, task, nav } = props;
  const { t } = useT();
  const open = [AnnotationState.PENDING, AnnotationState.LABELLING, AnnotationState.REVIEWING].includes(task.state);
  const cancel = () => api.augment.cancelAnnotationTask({ name: task.name }).then(props.onCancelled, (e) => props.onError(failure(e)));
  const p = task.progress;
  const a = task.agreement;
  return (
    <div className="card" data-testid="task-summary">
      <p>
        <StateBadge state={AnnotationState[task.state]} /> {t(`kind_${kindName(task.kind)}` as "kind_score")} ·{" "}
        <code>{versionText(api, task.source)}</code>
        {task.teacher && (
          <>
            {" "}
            · {t("preLabelWith")} <code>{short(task.teacher)}</code>
          </>
        )}
      </p>
      {task.instructions && <p className="prompt">{task.instructions}</p>}
      {task.failure && (
        <p className="error" role="alert">
          {task.failure.message}
        </p>
      )}
      {task.outputVersion && (
        <p className="notice">
          {t("outputVersion")}: <DataVersionLink api={api} nav={nav} name={task.outputVersion} />
        </p>
      )}
      <dl className="facts" aria-label={t("agreement")}>
        <dt>{t("items")}</dt>
        <dd data-testid="progress-items">{String(p?.items ?? 0)}</dd>
        <dt>{t("prelabelled")}</dt>
        <dd>
          {String(p?.prelabelled ?? 0)}
          {p?.prelabelFailed ? ` (${t("prelabelFailed")}: ${p.prelabelFailed})` : ""}
        </dd>
        <dt>{t("reviewed")}</dt>
        <dd data-testid="progress-reviewed">{String(p?.reviewed ?? 0)}</dd>
        <dt>{t("reviewsByAction")}</dt>
        <dd>{Object.entries(a?.reviewsByAction ?? {}).map(([action, n]) => `${action} ${n}`).join(" · ") || "—"}</dd>
        <dt>{t("modelAgreement")}</dt>
        <dd data-testid="model-agreement">
          {a?.modelReviews ? `${percent(a.modelAgreement)} (${a.modelReviews} ${t("reviews")}, κ ${a.modelKappa.toFixed(2)})` : "—"}
        </dd>
        {task.kind === AnnotationKind.SCORE && (
          <>
            <dt>{t("scoreMae")}</dt>
            <dd>{a?.modelReviews ? a.modelScoreMae.toFixed(2) : "—"}</dd>
          </>
        )}
        <dt>{t("reviewerAgreement")}</dt>
        <dd data-testid="reviewer-agreement">
          {a?.multiReviewedItems
            ? `${percent(a.reviewerAgreement)} (${a.multiReviewedItems} ${t("items").toLowerCase()}, Fleiss κ ${a.reviewerKappa.toFixed(2)})`
            : "—"}
        </dd>
        <dt>{t("calls")}</dt>
        <dd>
          {String(p?.calls ?? 0)} ({t("cached")} {String(p?.cachedCalls ?? 0)}) · {String((p?.promptTokens ?? 0n) + (p?.completionTokens ?? 0n))} tokens
          {p?.costEstimate ? ` · ≈ ${p.costEstimate.toFixed(4)}` : ""}
        </dd>
      </dl>
      {open && (
        <button type="button" className="danger" onClick={cancel}>
          {t("cancel")}
        </button>
      )}
    </div>
  );
}

/** A label as text, whatever the kind. */
function valueText(value: AnnotationValue | undefined): string {
  const v = value?.value;
  if (!v || v.case === undefined) return "";
  return String(v.value);
}

function asValue(kind: AnnotationKind, text: string): AnnotationValue {
  const value =
    kind === AnnotationKind.SCORE
      ? { case: "score" as const, value: Number(text) }
      : kind === AnnotationKind.LABEL
        ? { case: "label" as const, value: text }
        : kind === AnnotationKind.CHOICE
          ? { case: "choice" as const, value: text }
          : { case: "answer" as const, value: text };
  return { value } as AnnotationValue;
}

function jsonText(value: JsonValue): string {
  if (typeof value === "string") return value;
  const turns = Array.isArray(value) ? value : [];
  if (turns.length > 0 && turns.every((m) => m !== null && typeof m === "object" && !Array.isArray(m) && "content" in m)) {
    return turns.map((m) => `${(m as JsonObject).role ?? ""}: ${(m as JsonObject).content}`).join("\n");
  }
  return JSON.stringify(value, null, 1);
}

function RowView({ row }: { row?: JsonObject }) {
  if (!row) return null;
  return (
    <dl className="row-view">
      {Object.entries(row)
        .filter(([key, value]) => key !== "metadata" && value !== null && value !== "")
        .map(([key, value]) => (
          <Fragment key={key}>
            <dt>{key}</dt>
            <dd>{jsonText(value)}</dd>
          </Fragment>
        ))}
    </dl>
  );
}

function ItemCard(props: { api: Api; task: AnnotationTask; item: AnnotationItem; annotator: string; open: boolean; onReviewed: (item: AnnotationItem) => void }) {
  const { t } = useT();
  const { api, task, item } = props;
  const mine = item.reviews.find((r) => r.annotator === props.annotator.trim());
  // The edit box starts from this reviewer's label, else the decided one, else the model's.
  const start = [mine?.value, item.finalValue, item.modelValue].map(valueText).find(Boolean);
  const [draft, setDraft] = useState(start ?? (task.kind === AnnotationKind.SCORE ? String(task.scoreMin) : ""));
  const position = short(item.name);
  const { error, busy, run: review } = useAction(async (action: ReviewAction, value?: string) => {
    props.onReviewed(
      await api.augment.reviewAnnotationItem({
        name: item.name,
        annotator: props.annotator.trim(),
        action,
        value: action === ReviewAction.EDIT ? asValue(task.kind, value ?? draft) : undefined,
      }),
    );
  });
  const modelLabel = valueText(item.modelValue);
  return (
    <article className="card item" data-testid={`item-${position}`} aria-label={`${t("item")} ${position}`}>
      <h2>
        {t("item")} {position} <StateBadge state={AnnotationItemStatus[item.status]} />
        {item.finalValue?.value.case && <span className="muted"> → {valueText(item.finalValue)}</span>}
      </h2>
      <RowView row={item.row} />
      {item.candidates.length === 2 && (
        <div className="side-by-side">
          {item.candidates.map((answer, i) => (
            <div key={i}>
              <h3>{i === 0 ? "A" : "B"}</h3>
              <div className="answer">{answer}</div>
            </div>
          ))}
        </div>
      )}
      <p data-testid="model-label">
        <strong>{t("modelLabel")}:</strong> {modelLabel ? <span className="answer-inline">{modelLabel}</span> : <span className="muted">{item.modelError || t("none")}</span>}
      </p>
      {item.modelOutput && item.modelOutput !== modelLabel && (
        <details>
          <summary>{t("modelOutput")}</summary>
          <pre className="answer">{item.modelOutput}</pre>
        </details>
      )}
      {item.reviews.length > 0 && (
        <ul className="reviews">
          {item.reviews.map((r) => (
            <li key={r.annotator}>
              <strong>{r.annotator}</strong>: {ReviewAction[r.action].toLowerCase()}
              {valueText(r.value) && ` → ${valueText(r.value)}`}
            </li>
          ))}
        </ul>
      )}
      {props.open && (
        <div className="review">
          {task.kind === AnnotationKind.CHOICE ? (
            <div className="actions">
              <button type="button" disabled={busy} onClick={() => review(ReviewAction.EDIT, "A")}>
                {t("chooseA")}
              </button>
              <button type="button" disabled={busy} onClick={() => review(ReviewAction.EDIT, "B")}>
                {t("chooseB")}
              </button>
            </div>
          ) : (
            <Field id={`edit-${position}`} label={t("yourLabel")} error={violationFor(error, "value")}>
              {task.kind === AnnotationKind.SCORE && (
                <input id={`edit-${position}`} type="number" min={task.scoreMin} max={task.scoreMax} value={draft} onChange={(e) => setDraft(e.target.value)} />
              )}
              {task.kind === AnnotationKind.LABEL && (
                <select id={`edit-${position}`} value={draft} onChange={(e) => setDraft(e.target.value)}>
                  <option value="" disabled>
                    —
                  </option>
                  {task.labels.map((label) => (
                    <option key={label} value={label}>
                      {label}
                    </option>
                  ))}
                </select>
              )}
              {task.kind === AnnotationKind.CORRECTION && (
                <textarea id={`edit-${position}`} rows={3} value={draft} onChange={(e) => setDraft(e.target.value)} />
              )}
            </Field>
          )}
          <div className="actions">
            <button type="button" disabled={busy || !modelLabel} onClick={() => review(ReviewAction.ACCEPT)}>
              {t("accept")}
            </button>
            {task.kind !== AnnotationKind.CHOICE && (
              <button type="button" className="secondary" disabled={busy} onClick={() => review(ReviewAction.EDIT)}>
                {t("saveEdit")}
              </button>
            )}
            <button type="button" className="danger" disabled={busy} onClick={() => review(ReviewAction.REJECT)}>
              {t("reject")}
            </button>
          </div>
          <ErrorBox error={error} />
        </div>
      )}
    </article>
  );
}

function Finish({ api, task, onFinished }: { api: Api; task: AnnotationTask; onFinished: (task: AnnotationTask) => void }) {
  const { t } = useT();
  const [into, setInto] = useState("");
  const [includeUnreviewed, setIncludeUnreviewed] = useState(false);
  const [minScore, setMinScore] = useState("");
  const [keep, setKeep] = useState("");
  const { error, busy, submit } = useAction(async () => {
    onFinished(
      await api.augment.finishAnnotationTask({
        name: task.name,
        outputDataset: into.trim() ? `${api.parent}/datasets/${into.trim()}` : "",
        includeUnreviewed,
        minScore: Number(minScore || 0),
        keepLabels: keep.split(",").map((l) => l.trim()).filter(Boolean),
        requestId: requestId(),
      }),
    );
  });
  return (
    <form className="card" onSubmit={submit} noValidate aria-labelledby="finish-title">
      <h2 id="finish-title">{t("finishTask")}</h2>
      <div className="inline-form">
        <Field id="finish-into" label={t("intoDataset")} error={violationFor(error, "output_dataset")}>
          <input id="finish-into" value={into} onChange={(e) => setInto(e.target.value)} placeholder="reviewed" required />
        </Field>
        {task.kind === AnnotationKind.SCORE && (
          <Field id="finish-min-score" label={t("minScore")} error={violationFor(error, "min_score")}>
            <input id="finish-min-score" type="number" value={minScore} onChange={(e) => setMinScore(e.target.value)} />
          </Field>
        )}
        {task.kind === AnnotationKind.LABEL && (
          <Field id="finish-keep" label={t("keepLabels")} error={violationFor(error, "keep_labels")}>
            <input id="finish-keep" value={keep} onChange={(e) => setKeep(e.target.value)} placeholder={task.labels.join(", ")} />
          </Field>
        )}
      </div>
      <label className="check">
        <input type="checkbox" checked={includeUnreviewed} onChange={(e) => setIncludeUnreviewed(e.target.checked)} /> {t("includeUnreviewed")}
      </label>
      <ErrorBox error={error} />
      <button type="submit" disabled={busy}>
        {t("finish")}
      </button>
    </form>
  );
}
