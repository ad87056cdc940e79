// The shell: sign-in, the menu (Qianfan's order: data, templates, tuning, evaluation, models,
// serving), the language switch, and a small router over the address bar.
import { Code, ConnectError } from "@connectrpc/connect";
import { useCallback, useEffect, useMemo, useState, type FormEvent } from "react";
import { failure, makeApi, saveSession, savedSession, type Api, type Session } from "./api";
import { dictionaries, LangContext, useT, type Key, type Lang } from "./i18n";
import { AnnotationPage } from "./pages/Annotation";
import { AugmentationPage } from "./pages/Augmentation";
import { DataPage } from "./pages/Data";
import { DeploymentsPage } from "./pages/Deployments";
import { EvaluationPage } from "./pages/Evaluation";
import { KeysPage } from "./pages/Keys";
import { ModelsPage } from "./pages/Models";
import { OverviewPage } from "./pages/Overview";
import { TemplatesPage } from "./pages/Templates";
import { TrainingPage } from "./pages/Training";
import { Field } from "./ui";

export type Nav = { path: string; query: URLSearchParams; go: (to: string) => void };

const MENU: [string, Key][] = [
  ["/", "overview"],
  ["/data", "data"],
  ["/augmentation", "augmentation"],
  ["/annotation", "annotation"],
  ["/templates", "templates"],
  ["/training", "training"],
  ["/evaluation", "evaluation"],
  ["/models", "models"],
  ["/deployments", "deployments"],
  ["/keys", "keys"],
];

function useLocation(): Nav {
  const [href, setHref] = useState(window.location.pathname + window.location.search);
  useEffect(() => {
    const back = () => setHref(window.location.pathname + window.location.search);
    window.addEventListener("popstate", back);
    return () => window.removeEventListener("popstate", back);
  }, []);
  const go = useCallback((to: string) => {
    window.history.pushState(null, "", to);
    setHref(to);
    window.scrollTo(0, 0);
  }, []);
  const url = new URL(href, window.location.origin);
  return { path: url.pathname, query: url.searchParams, go };
}

function SignIn(props: { onSession: (s: Session) => void; notice: string }) {
  const { t } = useT();
  const [apiKey, setApiKey] = useState("");
  const [project, setProject] = useState(savedSession()?.project ?? "");
  const [problem, setProblem] = useState(props.notice);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    const session = { apiKey: apiKey.trim(), project: project.trim() };
    const api = makeApi(session, () => undefined);
    try {
      await api.registry.listModels({ parent: api.parent, pageSize: 1 });
      props.onSession(session);
    } catch (error) {
      const code = ConnectError.from(error).code;
      setProblem(
        code === Code.Unauthenticated ? t("badKey") : code === Code.PermissionDenied ? t("wrongProject") : failure(error).message,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="signin">
      <form onSubmit={submit} aria-labelledby="signin-title">
        <h1 id="signin-title">{t("signInTitle")}</h1>
        <p className="muted">{t("signInHelp")}</p>
        {problem && (
          <p className="error" role="alert">
            {problem}
          </p>
        )}
        <Field id="signin-project" label={t("project")}>
          <input id="signin-project" value={project} onChange={(e) => setProject(e.target.value)} required autoComplete="off" />
        </Field>
        <Field id="signin-key" label={t("apiKey")}>
          <input id="signin-key" type="password" value={apiKey} onChange={(e) => setApiKey(e.target.value)} required autoComplete="off" />
        </Field>
        <button type="submit" disabled={busy}>
          {t("signIn")}
        </button>
      </form>
    </main>
  );
}

function useLanguage(): [Lang, (lang: Lang) => void] {
  const initial = (localStorage.getItem("tuneforge.lang") as Lang | null) ?? (navigator.language.startsWith("zh") ? "zh" : "en");
  const [lang, setLang] = useState<Lang>(initial === "zh" ? "zh" : "en");
  const choose = (value: Lang) => {
    localStorage.setItem("tuneforge.lang", value);
    setLang(value);
    document.documentElement.lang = value === "zh" ? "zh-CN" : "en";
  };
  return [lang, choose];
}

export function App() {
  const [lang, setLang] = useLanguage();
  const t = useCallback((key: Key) => dictionaries[lang][key], [lang]);
  const nav = useLocation();
  const [session, setSession] = useState<Session | null>(savedSession());
  const [notice, setNotice] = useState("");
  const [menuOpen, setMenuOpen] = useState(false);
  const api: Api | null = useMemo(
    () =>
      session &&
      makeApi(session, () => {
        saveSession(null);
        setSession(null);
        setNotice(dictionaries[lang].badKey);
      }),
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [session],
  );
  const signIn = (s: Session) => {
    saveSession(s);
    setNotice("");
    setSession(s);
  };
  const page = () => {
    if (!api) return null;
    const p = nav.path;
    if (p.startsWith("/data")) return <DataPage api={api} nav={nav} />;
    if (p.startsWith("/augmentation")) return <AugmentationPage api={api} nav={nav} />;
    if (p.startsWith("/annotation")) return <AnnotationPage api={api} nav={nav} />;
    if (p.startsWith("/templates")) return <TemplatesPage api={api} nav={nav} />;
    if (p.startsWith("/training")) return <TrainingPage api={api} nav={nav} />;
    if (p.startsWith("/evaluation")) return <EvaluationPage api={api} nav={nav} />;
    if (p.startsWith("/models")) return <ModelsPage api={api} nav={nav} />;
    if (p.startsWith("/deployments")) return <DeploymentsPage api={api} nav={nav} />;
    if (p.startsWith("/keys")) return <KeysPage api={api} nav={nav} />;
    return <OverviewPage api={api} nav={nav} />;
  };
  return (
    <LangContext.Provider value={{ lang, t }}>
      <header className="topbar">
        <a
          className="brand"
          href="/"
          onClick={(e) => {
            e.preventDefault();
            nav.go("/");
          }}
        >
          {t("appName")}
        </a>
        {session && (
          <button type="button" className="menu-button" aria-expanded={menuOpen} aria-controls="menu" onClick={() => setMenuOpen(!menuOpen)}>
            {t("menu")}
          </button>
        )}
        {session && (
          <nav id="menu" className={menuOpen ? "open" : ""} aria-label={t("menu")}>
            {MENU.map(([path, key]) => (
              <a
                key={path}
                href={path}
                aria-current={(path === "/" ? nav.path === "/" : nav.path.startsWith(path)) ? "page" : undefined}
                onClick={(e) => {
                  e.preventDefault();
                  setMenuOpen(false);
                  nav.go(path);
                }}
              >
                {t(key)}
              </a>
            ))}
          </nav>
        )}
        <div className="top-tools">
          <label htmlFor="lang" className="sr-only">
            {t("language")}
          </label>
          <select id="lang" value={lang} onChange={(e) => setLang(e.target.value as Lang)}>
            <option value="zh">中文</option>
            <option value="en">English</option>
          </select>
          {session && (
            <>
              <span className="project" title={t("project")}>
                {session.project}
              </span>
              <button
                type="button"
                className="link"
                onClick={() => {
                  saveSession(null);
                  setSession(null);
                }}
              >
                {t("signOut")}
              </button>
            </>
          )}
        </div>
      </header>
      {session ? <main className="content">{page()}</main> : <SignIn onSession={signIn} notice={notice} />}
    </LangContext.Provider>
  );
}
