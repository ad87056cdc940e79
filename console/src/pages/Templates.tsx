// 精调样板间: the scenario templates as cards; "start from this template" fills the training form.
import { useState } from "react";
import type { Nav } from "../App";
import { failure, requestId, short, versionText, type Api, type Failure } from "../api";
import { useT } from "../i18n";
import { ErrorBox, Loading, useAsync } from "../ui";

export function TemplatesPage({ api, nav }: { api: Api; nav: Nav }) {
  const { t } = useT();
  const presets = useAsync(() => api.data.listPresets({}), [api]);
  const [installed, setInstalled] = useState<Record<string, string[]>>({});
  const [error, setError] = useState<Failure | null>(null);
  const install = async (preset: string) => {
    setError(null);
    try {
      const done = await api.data.installPreset({ parent: api.parent, preset, requestId: `console-${short(preset)}-${requestId()}` });
      setInstalled({ ...installed, [preset]: done.datasetVersions.map((v) => versionText(api, v.name)) });
    } catch (e) {
      setError(failure(e));
    }
  };
  return (
    <section>
      <h1>{t("templates")}</h1>
      <ErrorBox error={error ?? presets.error} />
      <Loading loading={presets.loading && !presets.value} />
      <div className="cards">
        {presets.value?.presets.map((p) => (
          <article className="card preset" key={p.name} data-testid={`preset-${short(p.name)}`}>
            <h2>{p.displayName || short(p.name)}</h2>
            <p>{p.description}</p>
            <dl>
              <dt>{t("method")}</dt>
              <dd>{p.method}</dd>
              <dt>{t("metrics")}</dt>
              <dd>{p.metrics.join(", ")}</dd>
              <dt>{t("rows")}</dt>
              <dd>
                {String(p.trainRows)} / {String(p.evalRows)}
              </dd>
            </dl>
            {installed[p.name] && (
              <p className="notice">
                {t("installed")}: {installed[p.name].join(", ")}
              </p>
            )}
            <div className="actions">
              <button type="button" className="secondary" onClick={() => install(p.name)}>
                {t("install")}
              </button>
              <button type="button" onClick={() => nav.go(`/training/new?preset=${encodeURIComponent(short(p.name))}`)}>
                {t("startFromTemplate")}
              </button>
            </div>
          </article>
        ))}
      </div>
    </section>
  );
}
