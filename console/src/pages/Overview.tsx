// 总览: what the project has going on, and the workers that run it.
import type { Nav } from "../App";
import { date, short, type Api } from "../api";
import { AnnotationState, AugmentationOperation, AugmentationState } from "../gen/tuneforge/data/v1/augmentation_pb";
import { EvaluationState } from "../gen/tuneforge/eval/v1/evaluation_pb";
import { DeploymentState } from "../gen/tuneforge/serve/v1/deployment_pb";
import { TrainingJobState } from "../gen/tuneforge/train/v1/training_job_pb";
import { useT } from "../i18n";
import { ErrorBox, Loading, NavLink, StateBadge, Table, useAsync } from "../ui";

export function OverviewPage({ api, nav }: { api: Api; nav: Nav }) {
  const { t } = useT();
  const facts = useAsync(async () => {
    const [jobs, evaluations, deployments, workers, runs, tasks] = await Promise.all([
      api.train.listTrainingJobs({ parent: api.parent, pageSize: 5 }),
      api.evals.listEvaluations({ parent: api.parent, pageSize: 5 }),
      api.serve.listDeployments({ parent: api.parent, pageSize: 5 }),
      api.train.listWorkers({}),
      api.augment.listAugmentationRuns({ parent: api.parent, pageSize: 5 }),
      api.augment.listAnnotationTasks({ parent: api.parent, pageSize: 5 }),
    ]);
    return {
      jobs: jobs.trainingJobs,
      evaluations: evaluations.evaluations,
      deployments: deployments.deployments,
      workers: workers.workers,
      runs: runs.augmentationRuns,
      tasks: tasks.annotationTasks,
    };
  }, [api]);
  const link = (to: string, text: string) => (
    <NavLink nav={nav} to={to}>
      {text}
    </NavLink>
  );
  const v = facts.value;
  return (
    <section>
      <h1>{t("overview")}</h1>
      <Loading loading={facts.loading && !v} />
      <ErrorBox error={facts.error} />
      {v && (
        <div className="grid2">
          <article className="card">
            <h2>{t("recentJobs")}</h2>
            <Table
              label={t("recentJobs")}
              head={[t("name"), t("state"), t("progress"), t("created")]}
              rows={v.jobs.map((j) => [
                link(`/training/jobs/${short(j.name)}`, j.displayName || short(j.name)),
                <StateBadge state={TrainingJobState[j.state]} />,
                `${j.currentStep}/${j.totalSteps}`,
                date(j.createTime),
              ])}
            />
          </article>
          <article className="card">
            <h2>{t("recentEvaluations")}</h2>
            <Table
              label={t("recentEvaluations")}
              head={[t("name"), t("state"), t("progress")]}
              rows={v.evaluations.map((e) => [
                link(`/evaluation/${short(e.name)}`, e.displayName || short(e.name)),
                <StateBadge state={EvaluationState[e.state]} />,
                `${e.doneSamples}/${e.totalSamples}`,
              ])}
            />
          </article>
          <article className="card">
            <h2>{t("deployments")}</h2>
            <Table
              label={t("deployments")}
              head={[t("name"), t("state"), t("modelVersion")]}
              rows={v.deployments.map((d) => [
                link(`/deployments/${short(d.name)}`, short(d.name)),
                <StateBadge state={DeploymentState[d.state]} />,
                d.servingVersion,
              ])}
            />
          </article>
          <article className="card">
            <h2>{t("dataWork")}</h2>
            <Table
              label={t("dataWork")}
              head={[t("name"), t("kind"), t("state"), t("progress")]}
              rows={[
                ...v.runs.map((r) => [
                  link(`/augmentation/${short(r.name)}`, short(r.name)),
                  AugmentationOperation[r.operation].toLowerCase(),
                  <StateBadge state={AugmentationState[r.state]} />,
                  `${r.progress?.rowsDone ?? 0}/${r.progress?.rowsTotal ?? 0}`,
                ]),
                ...v.tasks.map((task) => [
                  link(`/annotation/${short(task.name)}`, short(task.name)),
                  t("annotation"),
                  <StateBadge state={AnnotationState[task.state]} />,
                  `${task.progress?.reviewed ?? 0}/${task.progress?.items ?? 0}`,
                ]),
              ]}
            />
          </article>
          <article className="card">
            <h2>{t("workers")}</h2>
            <Table
              label={t("workers")}
              head={[t("name"), t("kind"), t("state")]}
              rows={v.workers.map((w) => [
                short(w.name),
                `${w.accelerators} × ${w.acceleratorKind}`,
                w.busy ? t("busy") : t("idle"),
              ])}
            />
          </article>
        </div>
      )}
    </section>
  );
}
