// 模型服务 and 体验中心: deployments, a streaming chat with feedback on each answer, call statistics.
import { useEffect, useRef, useState, type FormEvent } from "react";
import type { Nav } from "../App";
import { failure, requestId, short, type Api, type Failure } from "../api";
import { DeploymentState, Rating, type Deployment } from "../gen/tuneforge/serve/v1/deployment_pb";
import { useT } from "../i18n";
import { ErrorBox, Field, LineChart, Loading, NavLink, StateBadge, Table, useAsync, useStream, violationFor } from "../ui";

export function DeploymentsPage({ api, nav }: { api: Api; nav: Nav }) {
  const id = nav.path.match(/^\/deployments\/([^/]+)/)?.[1];
  if (id) return <Playground api={api} id={decodeURIComponent(id)} />;
  return <DeploymentList api={api} nav={nav} />;
}

function DeploymentList({ api, nav }: { api: Api; nav: Nav }) {
  const { t } = useT();
  const list = useAsync(() => api.serve.listDeployments({ parent: api.parent, pageSize: 50 }), [api]);
  const [id, setId] = useState("");
  const [version, setVersion] = useState("");
  const [error, setError] = useState<Failure | null>(null);
  const deploy = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      await api.serve.createDeployment({ parent: api.parent, deploymentId: id, deployment: { modelVersion: version }, requestId: requestId() });
      nav.go(`/deployments/${id}`);
    } catch (e) {
      setError(failure(e));
    }
  };
  return (
    <section>
      <h1>{t("deployments")}</h1>
      <form className="card inline-form" onSubmit={deploy}>
        <h2>{t("deploy")}</h2>
        <Field id="deploy-id" label={t("deploymentId")} error={violationFor(error, "deployment_id")}>
          <input id="deploy-id" value={id} onChange={(e) => setId(e.target.value)} required />
        </Field>
        <Field id="deploy-version" label={t("modelVersion")} error={violationFor(error, "model_version")}>
          <input id="deploy-version" value={version} onChange={(e) => setVersion(e.target.value)} placeholder="projects/…/models/…/versions/1" required />
        </Field>
        <button type="submit">{t("deploy")}</button>
      </form>
      <ErrorBox error={error ?? list.error} />
      <Loading loading={list.loading && !list.value} />
      {list.value && (
        <Table
          label={t("deployments")}
          head={[t("name"), t("state"), t("modelVersion")]}
          rows={list.value.deployments.map((d) => [
            <NavLink nav={nav} to={`/deployments/${short(d.name)}`}>{short(d.name)}</NavLink>,
            <StateBadge state={DeploymentState[d.state]} />,
            d.servingVersion || d.modelVersion,
          ])}
        />
      )}
    </section>
  );
}

type Turn = { role: "user" | "assistant"; content: string; call?: string; rated?: boolean };

function Playground({ api, id }: { api: Api; id: string }) {
  const { t } = useT();
  const name = `${api.parent}/deployments/${id}`;
  const [deployment, setDeployment] = useState<Deployment | null>(null);
  const [turns, setTurns] = useState<Turn[]>([]);
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Failure | null>(null);
  const stats = useAsync(() => api.serve.getDeploymentStats({ name }), [api, name, busy]);
  const stop = useRef<AbortController | null>(null);
  const streamError = useStream((signal) => api.serve.watchDeployment({ name }, { signal }), setDeployment, [api, name]);
  useEffect(() => () => stop.current?.abort(), []); // a chat in flight ends with the page
  const send = async (event: FormEvent) => {
    event.preventDefault();
    if (!text.trim()) return;
    const history: Turn[] = [...turns, { role: "user", content: text }];
    setTurns([...history, { role: "assistant", content: "" }]);
    setText("");
    setBusy(true);
    setError(null);
    stop.current = new AbortController();
    try {
      let answer = "";
      let call = "";
      for await (const piece of api.serve.chat(
        { deployment: name, messages: history.map((h) => ({ role: h.role, content: h.content })), maxTokens: 64 },
        { signal: stop.current.signal },
      )) {
        answer += piece.delta;
        call = piece.id || call;
        setTurns([...history, { role: "assistant", content: answer, call }]);
      }
    } catch (e) {
      setError(failure(e));
    } finally {
      setBusy(false);
    }
  };
  const feedback = async (index: number, rating: Rating) => {
    const turn = turns[index];
    if (!turn.call) return;
    try {
      await api.serve.submitFeedback({ name: `${name}/calls/${turn.call}`, feedback: { rating } });
      setTurns(turns.map((x, i) => (i === index ? { ...x, rated: true } : x)));
    } catch (e) {
      setError(failure(e));
    }
  };
  const hours = stats.value?.hours ?? [];
  // Hours before now (0: this hour).
  const now = Date.now() / 3_600_000;
  const at = (h: (typeof hours)[number]) => Math.round(Number(h.startTime?.seconds ?? 0n) / 3600 - now);
  return (
    <section>
      <h1>
        {t("playground")}: {id}
      </h1>
      {deployment && (
        <p className="card">
          <StateBadge state={DeploymentState[deployment.state]} /> {deployment.servingVersion || deployment.modelVersion} {deployment.stateReason}
        </p>
      )}
      <ErrorBox error={error ?? streamError} />
      <div className="chat" aria-live="polite" data-testid="chat">
        {turns.map((turn, i) => (
          <div key={i} className={`turn ${turn.role}`}>
            <p>{turn.content || (busy && i === turns.length - 1 ? "…" : "")}</p>
            {turn.role === "assistant" && turn.call && !busy && (
              turn.rated ? (
                <span className="muted" role="status">{t("thanks")}</span>
              ) : (
                <span className="feedback">
                  <button type="button" className="secondary" aria-label={t("good")} onClick={() => feedback(i, Rating.UP)}>👍</button>
                  <button type="button" className="secondary" aria-label={t("bad")} onClick={() => feedback(i, Rating.DOWN)}>👎</button>
                </span>
              )
            )}
          </div>
        ))}
      </div>
      <form className="chat-input" onSubmit={send}>
        <label htmlFor="chat-text" className="sr-only">{t("yourMessage")}</label>
        <textarea id="chat-text" rows={2} value={text} onChange={(e) => setText(e.target.value)} placeholder={t("yourMessage")} />
        <button type="submit" disabled={busy}>{t("send")}</button>
      </form>
      <article className="card">
        <h2>{t("stats")}</h2>
        {stats.value?.total && (
          <p data-testid="stats-total">
            {t("requests")}: {String(stats.value.total.requests)} · {t("tokens")}: {String(stats.value.total.completionTokens)} · {t("latency")}: {stats.value.total.latencyMsP95.toFixed(0)}
          </p>
        )}
        <LineChart label={t("requests")} xLabel={t("hoursAgo")} height={160} series={[{ name: t("requests"), color: "#3a6ea5", points: hours.map((h) => [at(h), Number(h.requests)]) }]} />
        <LineChart label={t("latency")} xLabel={t("hoursAgo")} height={160} series={[{ name: t("latency"), color: "#d9822b", points: hours.map((h) => [at(h), h.latencyMsP95]) }]} />
      </article>
    </section>
  );
}
