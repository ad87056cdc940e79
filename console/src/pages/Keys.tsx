// API keys of the project (project admins): make one (its secret shown once), revoke one; and the
// project's audit log (who called what, on which resource, with what outcome), newest first.
import { useCallback, useEffect, useState, type FormEvent } from "react";
import type { Nav } from "../App";
import { date, failure, requestId, short, type Api, type Failure } from "../api";
import { Role, type AuditLogEntry } from "../gen/tuneforge/iam/v1/iam_pb";
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
      <AuditLog api={api} />
    </section>
  );
}

function AuditLog({ api }: { api: Api }) {
  const { t } = useT();
  const [status, setStatus] = useState("");
  const [method, setMethod] = useState("");
  const [entries, setEntries] = useState<AuditLogEntry[]>([]);
  const [next, setNext] = useState("");
  const [error, setError] = useState<Failure | null>(null);
  const load = useCallback(
    async (token: string) => {
      setError(null);
      const terms = [status && `status = "${status}"`, method.trim() && `method = "${method.trim().replace(/"/g, "")}"`].filter(Boolean);
      try {
        const page = await api.iam.listAuditLogEntries({ parent: api.parent, pageSize: 25, pageToken: token, filter: terms.join(" AND ") });
        setEntries((before) => (token ? [...before, ...page.entries] : page.entries));
        setNext(page.nextPageToken);
      } catch (e) {
        setError(failure(e));
      }
    },
    [api, status, method],
  );
  useEffect(() => {
    load("");
    // Reloaded when the status changes; the method filter applies on "Show".
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [api, status]);
  return (
    <>
      <h2>{t("auditLog")}</h2>
      <form
        className="card inline-form"
        onSubmit={(event) => {
          event.preventDefault();
          load("");
        }}
      >
        <Field id="audit-status" label={t("state")}>
          <select id="audit-status" value={status} onChange={(e) => setStatus(e.target.value)}>
            <option value="">{t("allItems")}</option>
            {["OK", "INVALID_ARGUMENT", "NOT_FOUND", "PERMISSION_DENIED", "FAILED_PRECONDITION", "RESOURCE_EXHAUSTED"].map((code) => (
              <option key={code} value={code}>
                {code}
              </option>
            ))}
          </select>
        </Field>
        <Field id="audit-method" label={t("auditMethod")}>
          <input id="audit-method" value={method} onChange={(e) => setMethod(e.target.value)} placeholder="/tuneforge.registry.v1.RegistryService/DeleteModel" />
        </Field>
        <button type="submit">{t("show")}</button>
      </form>
      <ErrorBox error={error} />
      <Table
        label={t("auditLog")}
        head={[t("created"), t("auditKey"), t("auditMethod"), t("resource"), t("state"), "request id"]}
        rows={entries.map((e) => [
          date(e.time),
          <code>{short(e.apiKey)}</code>,
          <code>{e.method.split("/").slice(-2).join("/")}</code>,
          <code>{e.resource.replace(`${api.parent}/`, "")}</code>,
          e.status,
          <code>{e.requestId}</code>,
        ])}
      />
      {next && (
        <button type="button" className="secondary" onClick={() => load(next)}>
          {t("more")}
        </button>
      )}
    </>
  );
}
