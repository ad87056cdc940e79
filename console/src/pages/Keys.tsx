// API keys of the project (project admins): make one (its secret shown once), revoke one.
import { useState, type FormEvent } from "react";
import type { Nav } from "../App";
import { date, failure, requestId, short, type Api, type Failure } from "../api";
import { Role } from "../gen/tuneforge/iam/v1/iam_pb";
import { useT } from "../i18n";
import { ErrorBox, Field, Loading, Table, useAsync, violationFor } from "../ui";

export function KeysPage({ api }: { api: Api; nav: Nav }) {
  const { t } = useT();
  const keys = useAsync(() => api.iam.listApiKeys({ parent: api.parent }), [api]);
  const [name, setName] = useState("");
  const [role, setRole] = useState(Role.MEMBER);
  const [secret, setSecret] = useState("");
  const [error, setError] = useState<Failure | null>(null);
  const create = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    try {
      const made = await api.iam.createApiKey({ parent: api.parent, apiKey: { displayName: name, role }, requestId: requestId() });
      setSecret(made.token);
      setName("");
      keys.reload();
    } catch (e) {
      setError(failure(e));
    }
  };
  const revoke = async (keyName: string) => {
    try {
      await api.iam.revokeApiKey({ name: keyName });
      keys.reload();
    } catch (e) {
      setError(failure(e));
    }
  };
  return (
    <section>
      <h1>{t("keys")}</h1>
      <form className="card inline-form" onSubmit={create}>
        <h2>{t("newKey")}</h2>
        <Field id="key-name" label={t("name")} error={violationFor(error, "display_name")}>
          <input id="key-name" value={name} onChange={(e) => setName(e.target.value)} />
        </Field>
        <Field id="key-role" label={t("role")}>
          <select id="key-role" value={role} onChange={(e) => setRole(Number(e.target.value))}>
            <option value={Role.VIEWER}>viewer</option>
            <option value={Role.MEMBER}>member</option>
            <option value={Role.ADMIN}>admin</option>
          </select>
        </Field>
        <button type="submit">{t("create")}</button>
      </form>
      {secret && (
        <p className="notice" role="status">
          {t("keyShownOnce")} <code className="secret">{secret}</code>
        </p>
      )}
      <ErrorBox error={error ?? keys.error} />
      <Loading loading={keys.loading && !keys.value} />
      {keys.value && (
        <Table
          label={t("keys")}
          head={[t("name"), t("role"), t("created"), t("lastUsed"), t("state"), ""]}
          rows={keys.value.apiKeys.map((k) => [
            k.displayName || short(k.name),
            Role[k.role].toLowerCase(),
            date(k.createTime),
            date(k.lastUsedTime),
            k.active ? t("active") : t("revoked"),
            k.active ? (
              <button type="button" className="danger" onClick={() => revoke(k.name)}>
                {t("revoke")}
              </button>
            ) : null,
          ])}
        />
      )}
    </section>
  );
}
