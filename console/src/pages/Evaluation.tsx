// 模型评估: create an evaluation, the side-by-side metrics with deltas, the worst samples, and
// human rating (scores 1–5, or blind A/B where the page never says which model wrote which answer).
import { useEffect, useState, type FormEvent } from "react";
import type { Nav } from "../App";
import { failure, requestId, short, versionName, type Api, type Failure } from "../api";
import { EvaluationState, type Evaluation, type RatingItem, type RatingTask, type SamplePrediction } from "../gen/tuneforge/eval/v1/evaluation_pb";
import { useT } from "../i18n";
import { BarChart, ErrorBox, Field, Loading, NavLink, StateBadge, Table, useAsync, useStream, violationFor } from "../ui";

const FINAL = [EvaluationState.SUCCEEDED, EvaluationState.FAILED, EvaluationState.CANCELLED];
const COLORS = ["#3a6ea5", "#d9822b", "#5b8c5a", "#8e6bb8"];

export function EvaluationPage({ api, nav }: { api: Api; nav: Nav }) {
  const match = nav.path.match(/^\/evaluation\/([^/]+)(?:\/rate\/([^/]+))?/);
  if (match?.[2]) return <RatePage api={api} evaluation={match[1]} task={match[2]} />;
  if (match?.[1]) return <EvaluationView api={api} id={match[1]} nav={nav} />;
  return <EvaluationList api={api} nav={nav} />;
}

function EvaluationList({ api, nav }: { api: Api; nav: Nav }) {
  const { t } = useT();
  const list = useAsync(() => api.evals.listEvaluations({ parent: api.parent, pageSize: 50 }), [api]);
  const [models, setModels] = useState(nav.query.get("models")?.split(",").join("\n") ?? "");
  const [data, setData] = useState("");
  const [metrics, setMetrics] = useState("bleu4, rouge_l");
  const [error, setError] = useState<Failure | null>(null);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const made = await api.evals.createEvaluation({
        parent: api.parent,
        requestId: requestId(),
        evaluation: {
          modelVersions: models.split(/\s+/).filter(Boolean),
          datasetVersion: versionName(api, data),
          metrics: metrics.split(/[,\s]+/).filter(Boolean),
        },
      });
      nav.go(`/evaluation/${short(made.name)}`);
    } catch (e) {
      setError(failure(e));
    }
  };
  return (
    <section>
      <h1>{t("evaluation")}</h1>
      <form className="card" onSubmit={submit}>
        <h2>{t("newEvaluation")}</h2>
        <Field id="eval-models" label={t("modelVersions")} error={violationFor(error, "model_versions")}>
          <textarea id="eval-models" rows={3} value={models} onChange={(e) => setModels(e.target.value)} required />
        </Field>
        <Field id="eval-data" label={t("evalData")} error={violationFor(error, "dataset_version")}>
          <input id="eval-data" value={data} onChange={(e) => setData(e.target.value)} placeholder="essay-grading-eval/1" required />
        </Field>
        <Field id="eval-metrics" label={t("metrics")} error={violationFor(error, "metrics")}>
          <input id="eval-metrics" value={metrics} onChange={(e) => setMetrics(e.target.value)} />
        </Field>
        <ErrorBox error={error} />
        <button type="submit">{t("create")}</button>
      </form>
      <ErrorBox error={list.error} />
      <Loading loading={list.loading && !list.value} />
      {list.value && (
        <Table
          label={t("evaluation")}
          head={[t("name"), t("state"), t("progress")]}
          rows={list.value.evaluations.map((e) => [
            <NavLink nav={nav} to={`/evaluation/${short(e.name)}`}>
              {e.displayName || short(e.name)}
            </NavLink>,
            <StateBadge state={EvaluationState[e.state]} />,
            `${e.doneSamples}/${e.totalSamples}`,
          ])}
        />
      )}
    </section>
  );
}

function EvaluationView({ api, id, nav }: { api: Api; id: string; nav: Nav }) {
  const { t } = useT();
  const name = `${api.parent}/evaluations/${id}`;
  const [evaluation, setEvaluation] = useState<Evaluation | null>(null);
  const [error, setError] = useState<Failure | null>(null);
  const [worst, setWorst] = useState<SamplePrediction[]>([]);
  const [kind, setKind] = useState("side_by_side");
  const streamError = useStream((signal) => api.evals.watchEvaluation({ name }, { signal }), setEvaluation, [api, name]);
  const done = evaluation?.state === EvaluationState.SUCCEEDED;
  const metric = evaluation?.metrics[0] ?? "";
  const last = evaluation?.modelVersions[evaluation.modelVersions.length - 1] ?? "";
  useEffect(() => {
    if (!done || !metric) return;
    api.evals
      .listSamplePredictions({ parent: name, modelVersion: last, orderBy: metric, pageSize: 5 })
      .then((r) => setWorst(r.predictions), (e) => setError(failure(e)));
  }, [api, name, done, metric, last]);
  const rate = async () => {
    if (!evaluation) return;
    setError(null);
    try {
      const versions = kind === "side_by_side" ? evaluation.modelVersions.slice(-2) : evaluation.modelVersions.slice(-1);
      const task: RatingTask = await api.evals.createRatingTask({ parent: name, ratingTask: { kind, modelVersions: versions, scale: 5 } });
      nav.go(`/evaluation/${id}/rate/${short(task.name)}`);
    } catch (e) {
      setError(failure(e));
    }
  };
  const metricNames = evaluation ? Object.keys(evaluation.results[0]?.metrics ?? {}) : [];
  return (
    <section>
      <h1>
        {t("evaluation")}: {id}
      </h1>
      <ErrorBox error={error ?? streamError} />
      {!evaluation && <Loading loading />}
      {evaluation && (
        <>
          <div className="card" data-testid="evaluation-state">
            <StateBadge state={EvaluationState[evaluation.state]} /> {String(evaluation.doneSamples)}/{String(evaluation.totalSamples)} · {evaluation.datasetVersion}
            {evaluation.error && <p className="error">{evaluation.error}</p>}
          </div>
          {evaluation.results.length > 0 && (
            <article className="card">
              <h2>{t("compare")}</h2>
              <Table
                label={t("compare")}
                head={[t("modelVersion"), ...metricNames.flatMap((m) => [m, `${m} ${t("delta")}`])]}
                rows={evaluation.results.map((r) => [
                  r.modelVersion,
                  ...metricNames.flatMap((m) => {
                    const delta = r.deltaVsBaseline[m];
                    return [r.metrics[m]?.toFixed(4) ?? "", delta === undefined ? "" : `${delta >= 0 ? "+" : ""}${delta.toFixed(4)}`];
                  }),
                ])}
              />
              {metricNames.map((m) => (
                <div key={m}>
                  <h3>{m}</h3>
                  <BarChart
                    label={m}
                    bars={evaluation.results.map((r, i) => ({ label: short(r.modelVersion.replace("/versions/", "@")), value: r.metrics[m] ?? 0, color: COLORS[i % COLORS.length] }))}
                  />
                </div>
              ))}
            </article>
          )}
          {worst.length > 0 && (
            <article className="card">
              <h2>
                {t("worstSamples")} ({metric})
              </h2>
              <Table
                label={t("worstSamples")}
                head={["id", t("prompt"), t("reference"), t("prediction"), metric]}
                rows={worst.map((p) => [p.sampleId, <span className="clip">{p.prompt}</span>, <span className="clip">{p.reference}</span>, <span className="clip">{p.prediction}</span>, p.scores[metric]?.toFixed(3) ?? ""])}
              />
            </article>
          )}
          {FINAL.includes(evaluation.state) && done && (
            <article className="card inline-form">
              <h2>{t("rating")}</h2>
              <Field id="rating-kind" label={t("kind")}>
                <select id="rating-kind" value={kind} onChange={(e) => setKind(e.target.value)}>
                  <option value="side_by_side">A/B</option>
                  <option value="rating">1–5</option>
                </select>
              </Field>
              <button type="button" onClick={rate}>
                {t("createRating")}
              </button>
            </article>
          )}
        </>
      )}
    </section>
  );
}

function RatePage({ api, evaluation, task }: { api: Api; evaluation: string; task: string }) {
  const { t } = useT();
  const parent = `${api.parent}/evaluations/${evaluation}/ratingTasks/${task}`;
  const items = useAsync(() => api.evals.listRatingItems({ parent, pageSize: 20 }), [api, parent]);
  const summary = useAsync(() => api.evals.getRatingSummary({ name: parent }), [api, parent]);
  const [rater, setRater] = useState(localStorage.getItem("tuneforge.rater") ?? "");
  const [done, setDone] = useState<Record<string, boolean>>({});
  const [error, setError] = useState<Failure | null>(null);
  const submit = async (item: RatingItem, answer: { score?: number; preference?: string }) => {
    setError(null);
    localStorage.setItem("tuneforge.rater", rater);
    try {
      await api.evals.submitRating({ ratingTask: parent, sampleId: item.sampleId, rater, ...answer });
      setDone({ ...done, [item.sampleId]: true });
      summary.reload();
    } catch (e) {
      setError(failure(e));
    }
  };
  return (
    <section>
      <h1>{t("rating")}</h1>
      <Field id="rater" label={t("rater")}>
        <input id="rater" value={rater} onChange={(e) => setRater(e.target.value)} required />
      </Field>
      <ErrorBox error={error ?? items.error} />
      <Loading loading={items.loading && !items.value} />
      {summary.value && (
        <p className="muted" data-testid="rating-summary">
          {/* Shares of A and B would unblind the raters: the count only. */}
          {t("ratings")}: {String(summary.value.ratings)}
        </p>
      )}
      {items.value?.items.map((item) => (
        <RateItem key={item.sampleId} item={item} rater={rater} done={Boolean(done[item.sampleId])} onSubmit={(a) => submit(item, a)} />
      ))}
    </section>
  );
}

function RateItem(props: { item: RatingItem; rater: string; done: boolean; onSubmit: (a: { score?: number; preference?: string }) => void }) {
  const { t } = useT();
  const { item } = props;
  // Blind: the two answers are shown in a random order, and the choice mapped back.
  const [swapped] = useState(() => Math.random() < 0.5);
  const [score, setScore] = useState(0);
  const answers = item.answers.length > 1 && swapped ? [item.answers[1], item.answers[0]] : item.answers;
  const choose = (shown: "A" | "B" | "tie") => props.onSubmit({ preference: shown === "tie" || !swapped ? shown : shown === "A" ? "B" : "A" });
  const id = item.sampleId.replace(/[^A-Za-z0-9_-]/g, "_");
  return (
    <article className="card rate-item" data-testid={`rate-${id}`}>
      <h2>{item.sampleId}</h2>
      <p className="prompt">{item.prompt}</p>
      <div className={answers.length > 1 ? "side-by-side" : ""}>
        {answers.map((answer, i) => (
          <div key={i} className="answer">
            <h3>{answers.length > 1 ? (i === 0 ? t("answerA") : t("answerB")) : t("prediction")}</h3>
            <p>{answer}</p>
          </div>
        ))}
      </div>
      {props.done ? (
        <p className="notice" role="status">
          {t("submitted")}
        </p>
      ) : answers.length > 1 ? (
        <div className="actions" role="group" aria-label={t("prefer")}>
          <button type="button" disabled={!props.rater} onClick={() => choose("A")}>{t("answerA")}</button>
          <button type="button" disabled={!props.rater} onClick={() => choose("tie")}>{t("tie")}</button>
          <button type="button" disabled={!props.rater} onClick={() => choose("B")}>{t("answerB")}</button>
        </div>
      ) : (
        <div className="inline-form">
          <Field id={`score-${id}`} label={t("score")}>
            <select id={`score-${id}`} value={score} onChange={(e) => setScore(Number(e.target.value))}>
              <option value={0}>—</option>
              {[1, 2, 3, 4, 5].map((s) => (
                <option key={s} value={s}>{s}</option>
              ))}
            </select>
          </Field>
          <button type="button" disabled={!props.rater || !score} onClick={() => props.onSubmit({ score })}>
            {t("submit")}
          </button>
        </div>
      )}
    </article>
  );
}
