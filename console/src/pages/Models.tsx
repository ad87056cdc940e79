// 模型仓库: models, versions, aliases, the lineage drawn as a graph, derivations, downloads.
import { useEffect, useState, type FormEvent } from "react";
import type { Nav } from "../App";
import { date, failure, requestId, short, type Api, type Failure } from "../api";
import { DerivationState, ModelVersionKind, type LineageEdge, type LineageNode, type ModelVersion } from "../gen/tuneforge/registry/v1/model_pb";
import type { PresignedUrl } from "../gen/tuneforge/common/v1/common_pb";
import { useT } from "../i18n";
import { ErrorBox, Field, Loading, NavLink, StateBadge, Table, useAsync, violationFor } from "../ui";

export function ModelsPage({ api, nav }: { api: Api; nav: Nav }) {
  const model = nav.path.match(/^\/models\/([^/]+)/)?.[1];
  if (model) return <ModelView api={api} id={decodeURIComponent(model)} nav={nav} />;
  return <ModelList api={api} nav={nav} />;
}

function ModelList({ api, nav }: { api: Api; nav: Nav }) {
  const { t } = useT();
  const models = useAsync(() => api.registry.listModels({ parent: api.parent, pageSize: 100 }), [api]);
  return (
    <section>
      <h1>{t("models")}</h1>
      <ErrorBox error={models.error} />
      <Loading loading={models.loading && !models.value} />
      {models.value && (
        <Table
          label={t("models")}
          head={[t("name"), t("versions"), t("created")]}
          rows={models.value.models.map((m) => [
            <NavLink nav={nav} to={`/models/${short(m.name)}`}>
              {m.displayName || short(m.name)}
            </NavLink>,
            String(m.versionCount),
            date(m.createTime),
          ])}
        />
      )}
    </section>
  );
}

function ModelView({ api, id, nav }: { api: Api; id: string; nav: Nav }) {
  const { t } = useT();
  const parent = `${api.parent}/models/${id}`;
  const versions = useAsync(() => api.registry.listModelVersions({ parent, pageSize: 100 }), [api, parent]);
  const chosen = nav.query.get("version");
  const list = versions.value?.modelVersions ?? [];
  const current = list.find((v) => short(v.name) === chosen) ?? list[0];
  const [alias, setAlias] = useState("production");
  const [aliasVersion, setAliasVersion] = useState("");
  const [error, setError] = useState<Failure | null>(null);
  const [notice, setNotice] = useState("");
  useEffect(() => {
    if (current && !aliasVersion) setAliasVersion(short(current.name));
  }, [current, aliasVersion]);
  const setModelAlias = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const made = await api.registry.setModelAlias({ parent, alias, version: `${parent}/versions/${aliasVersion}` });
      setNotice(`${short(made.name)} → ${made.version}`);
      versions.reload();
    } catch (e) {
      setError(failure(e));
    }
  };
  return (
    <section>
      <h1>
        {t("models")}: {id}
      </h1>
      <ErrorBox error={versions.error ?? error} />
      <Loading loading={versions.loading && !versions.value} />
      <article className="card">
        <h2>{t("versions")}</h2>
        <Table
          label={t("versions")}
          head={[t("version"), t("kind"), "MiB", t("aliases"), t("created")]}
          rows={list.map((v) => [
            <NavLink nav={nav} to={`/models/${id}?version=${short(v.name)}`}>{short(v.name)}</NavLink>,
            ModelVersionKind[v.kind].toLowerCase(),
            (Number(v.totalSizeBytes) / 2 ** 20).toFixed(1),
            v.aliases.join(", "),
            date(v.createTime),
          ])}
        />
      </article>
      <form className="card inline-form" onSubmit={setModelAlias} aria-labelledby="alias-title">
        <h2 id="alias-title">{t("setAlias")}</h2>
        <Field id="alias-name" label={t("alias")} error={violationFor(error, "alias")}>
          <input id="alias-name" value={alias} onChange={(e) => setAlias(e.target.value)} required />
        </Field>
        <Field id="alias-version" label={t("version")} error={violationFor(error, "version")}>
          <select id="alias-version" value={aliasVersion} onChange={(e) => setAliasVersion(e.target.value)}>
            {list.map((v) => (
              <option key={v.name} value={short(v.name)}>
                {short(v.name)}
              </option>
            ))}
          </select>
        </Field>
        <button type="submit">{t("setAlias")}</button>
        {notice && <p className="notice" role="status">{notice}</p>}
      </form>
      {current && <VersionPanel key={current.name} api={api} version={current} nav={nav} onDerived={versions.reload} />}
    </section>
  );
}

function VersionPanel({ api, version, nav, onDerived }: { api: Api; version: ModelVersion; nav: Nav; onDerived: () => void }) {
  const { t } = useT();
  const graph = useAsync(() => api.registry.getLineageGraph({ name: version.name }), [api, version.name]);
  const [urls, setUrls] = useState<PresignedUrl[]>([]);
  const [derivation, setDerivation] = useState<{ operation: string; state: string; result: string } | null>(null);
  const [error, setError] = useState<Failure | null>(null);
  const derive = async (operation: string, target = "") => {
    setError(null);
    try {
      const started = await api.registry.createDerivation({ name: version.name, operation, target, requestId: requestId() });
      setDerivation({ operation, state: DerivationState[started.state], result: "" });
      for await (const update of api.registry.watchDerivation({ name: started.name })) {
        setDerivation({ operation, state: DerivationState[update.state], result: update.resultVersion });
        if (update.resultVersion) onDerived();
      }
    } catch (e) {
      setError(failure(e));
    }
  };
  const download = async () => {
    try {
      setUrls((await api.registry.generateModelVersionDownloadUrls({ name: version.name })).urls);
    } catch (e) {
      setError(failure(e));
    }
  };
  return (
    <article className="card">
      <h2>
        {t("version")} {short(version.name)}
      </h2>
      <ErrorBox error={error ?? graph.error} />
      <h3>{t("lineage")}</h3>
      {graph.value && <LineageGraph nodes={graph.value.nodes} edges={graph.value.edges} root={graph.value.root} nav={nav} />}
      {version.lineage?.datasetVersions.length ? (
        <p className="muted">
          {t("trainingData")}: {version.lineage.datasetVersions.map((d) => `${d.datasetVersion.replace(/^projects\/[^/]+\/datasets\//, "")} ×${d.samplingRate}`).join(", ")}
        </p>
      ) : null}
      <h3>{t("derive")}</h3>
      <div className="actions">
        {version.kind === ModelVersionKind.LORA_ADAPTER && (
          <button type="button" className="secondary" onClick={() => derive("merge_lora")}>
            {t("merge")}
          </button>
        )}
        <button type="button" className="secondary" onClick={() => derive("quantize", "int8")}>
          {t("quantize")} int8
        </button>
        <button type="button" className="secondary" onClick={download}>
          {t("download")}
        </button>
      </div>
      {derivation && (
        <p className="notice" role="status" data-testid="derivation">
          {derivation.operation}: <StateBadge state={derivation.state} />{" "}
          {derivation.result && (
            <NavLink nav={nav} to={`/models/${derivation.result.split("/")[3]}?version=${short(derivation.result)}`}>
              {derivation.result.replace(/^projects\/[^/]+\/models\//, "")}
            </NavLink>
          )}
        </p>
      )}
      {urls.length > 0 && (
        <ul className="downloads">
          {urls.map((u) => (
            <li key={u.path}>
              <a href={u.url} download={u.path}>{u.path}</a>
            </li>
          ))}
        </ul>
      )}
    </article>
  );
}

/** The lineage as layers: each version right of what it came from (its base, its parent). */
function LineageGraph(props: { nodes: LineageNode[]; edges: LineageEdge[]; root: string; nav: Nav }) {
  // The data each version was trained on joins the graph as its own nodes.
  const dataEdges = props.nodes.flatMap((n) =>
    (n.lineage?.datasetVersions ?? []).map((d) => ({ child: n.modelVersion, source: d.datasetVersion, relation: `data ×${d.samplingRate}` })),
  );
  const edges = [...props.edges.map((e) => ({ child: e.child, source: e.source, relation: e.relation })), ...dataEdges];
  const depth = new Map<string, number>();
  const sources = (name: string) => edges.filter((e) => e.child === name).map((e) => e.source);
  const level = (name: string, seen: Set<string> = new Set()): number => {
    if (depth.has(name)) return depth.get(name)!;
    if (seen.has(name)) return 0;
    seen.add(name);
    const d = Math.max(-1, ...sources(name).map((s) => level(s, seen))) + 1;
    depth.set(name, d);
    return d;
  };
  const names = Array.from(new Set([...props.nodes.map((n) => n.modelVersion), ...edges.flatMap((e) => [e.child, e.source])]));
  names.forEach((n) => level(n));
  const columns = new Map<number, string[]>();
  names.forEach((n) => columns.set(depth.get(n)!, [...(columns.get(depth.get(n)!) ?? []), n]));
  const box = { w: 190, h: 44, gapX: 60, gapY: 18 };
  const at = new Map<string, { x: number; y: number }>();
  for (const [d, column] of columns) column.forEach((n, i) => at.set(n, { x: 10 + d * (box.w + box.gapX), y: 10 + i * (box.h + box.gapY) }));
  const width = 20 + (Math.max(...columns.keys()) + 1) * (box.w + box.gapX);
  const height = 20 + Math.max(...Array.from(columns.values(), (c) => c.length)) * (box.h + box.gapY);
  const label = (n: string) => n.replace(/^projects\/[^/]+\/(models|datasets)\//, "").replace("/versions/", "/");
  const aliases = (n: string) => props.nodes.find((x) => x.modelVersion === n)?.aliases ?? [];
  // Under each version: how it was derived (e.g. `quantize int8`), then its aliases.
  const subtitle = (n: string) => {
    const node = props.nodes.find((x) => x.modelVersion === n);
    return [node?.derivation.replace(/_/g, " ") ?? "", ...aliases(n)].filter(Boolean).join(" · ");
  };
  return (
    <div className="graph-wrap">
      <svg viewBox={`0 0 ${width} ${height}`} width={width} height={height} role="img" aria-label="lineage" data-testid="lineage-graph">
        <defs>
          <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto">
            <path d="M0,0 L10,5 L0,10 z" fill="#888" />
          </marker>
        </defs>
        {edges.map((e, i) => {
          const from = at.get(e.source)!;
          const to = at.get(e.child)!;
          return (
            <g key={i}>
              <line x1={from.x + box.w} y1={from.y + box.h / 2} x2={to.x} y2={to.y + box.h / 2} stroke="#888" markerEnd="url(#arrow)" />
              <text x={(from.x + box.w + to.x) / 2} y={(from.y + to.y) / 2 + box.h / 2 - 4} textAnchor="middle" className="edge-label">
                {e.relation}
              </text>
            </g>
          );
        })}
        {names.map((n) => {
          const p = at.get(n)!;
          const isData = n.includes("/datasets/");
          const [, , kind, owner] = n.split("/");
          return (
            <g
              key={n}
              className={n === props.root ? "node root" : isData ? "node data" : "node"}
              onClick={() => props.nav.go(kind === "datasets" ? `/data?dataset=${owner}&version=${short(n)}` : `/models/${owner}?version=${short(n)}`)}
              role="link"
              aria-label={label(n)}
            >
              <rect x={p.x} y={p.y} width={box.w} height={box.h} rx={6} />
              <text x={p.x + 8} y={p.y + 18}>{label(n).slice(0, 26)}</text>
              <text x={p.x + 8} y={p.y + 35} className="node-sub">{subtitle(n).slice(0, 30)}</text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
