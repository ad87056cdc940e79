// Two parts of the training form. The chosen method's settings (MethodParameters): the preference
// strength of DPO/ORPO/KTO/reward models, KTO's weights, GRPO's sampling, loss and rule rewards,
// SFT's reasoning mask; only the chosen method's are sent (the server refuses another method's).
// And the resources the job needs (devices, nodes, kind, memory), beside what live workers have.
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { Failure } from "../api";
import { TrainingMethod, type MethodParameters, type MethodParametersSchema } from "../gen/tuneforge/train/v1/training_job_pb";
import { useT } from "../i18n";
import { Field, useAsync, violationFor } from "../ui";
import type { Api } from "../api";

type Reward = { type: string; pattern: string; fields: string; targetWords: string; grader: string; weight: string };
export type MethodForm = { values: Record<string, string>; rewards: Reward[]; maskReasoning: boolean };
export const emptyMethodForm = (): MethodForm => ({ values: {}, rewards: [], maskReasoning: false });

const REWARD_TYPES = ["regex", "exact_answer", "word_count", "json_fields", "grader"];
const LOSSES = ["dapo", "grpo", "dr_grpo", "bnpo", "cispo"];
const SCALINGS = ["group", "batch", "none"];
const PREFERENCE = [TrainingMethod.DPO, TrainingMethod.ORPO, TrainingMethod.KTO, TrainingMethod.REWARD_MODEL, TrainingMethod.GRPO];
// (field in the form, field in the message, the methods that take it, input step)
const NUMBERS: [string, keyof MethodParameters, TrainingMethod[], string][] = [
  ["beta", "beta", PREFERENCE, "any"],
  ["desirable_weight", "desirableWeight", [TrainingMethod.KTO], "any"],
  ["undesirable_weight", "undesirableWeight", [TrainingMethod.KTO], "any"],
  ["num_generations", "numGenerations", [TrainingMethod.GRPO], "1"],
  ["max_completion_length", "maxCompletionLength", [TrainingMethod.GRPO], "1"],
  ["temperature", "temperature", [TrainingMethod.GRPO], "any"],
  ["epsilon_high", "epsilonHigh", [TrainingMethod.GRPO], "any"],
];

/** The message for `method`, from what the form holds; undefined when nothing is set. */
export function methodParameters(method: TrainingMethod, form: MethodForm): MessageInitShape<typeof MethodParametersSchema> | undefined {
  const out: Record<string, unknown> = {};
  for (const [field, message, methods] of NUMBERS) {
    if (methods.includes(method) && form.values[field]) out[message] = Number(form.values[field]);
  }
  if (method === TrainingMethod.GRPO) {
    for (const [field, message] of [["loss_type", "lossType"], ["scale_rewards", "scaleRewards"], ["reward_model", "rewardModel"]] as const) {
      if (form.values[field]) out[message] = form.values[field].trim();
    }
    out.rewards = form.rewards.map(
      (r) => ({
        type: r.type,
        pattern: r.type === "regex" ? r.pattern : "",
        requiredFields: r.type === "json_fields" ? r.fields.split(",").map((f) => f.trim()).filter(Boolean) : [],
        targetWords: r.type === "word_count" ? Number(r.targetWords || 0) : 0,
        grader: r.type === "grader" ? r.grader : "",
        weight: r.weight ? Number(r.weight) : 0,
      }),
    );
  }
  if (method === TrainingMethod.SFT && form.maskReasoning) out.maskReasoning = true;
  return Object.keys(out).length > 0 ? (out as MessageInitShape<typeof MethodParametersSchema>) : undefined;
}

export function MethodSettings(props: { method: TrainingMethod; form: MethodForm; onChange: (form: MethodForm) => void; error: Failure | null }) {
  const { t } = useT();
  const { method, form, error } = props;
  const on = (field: string) => `method_parameters.${field}`;
  const setValue = (field: string, value: string) => props.onChange({ ...form, values: { ...form.values, [field]: value } });
  const setReward = (i: number, change: Partial<Reward>) =>
    props.onChange({ ...form, rewards: form.rewards.map((r, j) => (j === i ? { ...r, ...change } : r)) });
  const numbers = NUMBERS.filter(([, , methods]) => methods.includes(method));
  if (numbers.length === 0 && method !== TrainingMethod.SFT) return null;
  return (
    <fieldset className="method-settings">
      <legend>{t("methodSettings")}</legend>
      {method === TrainingMethod.SFT && (
        <label className="check">
          <input type="checkbox" checked={form.maskReasoning} onChange={(e) => props.onChange({ ...form, maskReasoning: e.target.checked })} />{" "}
          {t("maskReasoning")}
        </label>
      )}
      <div className="inline-form">
        {numbers.map(([field, , , step]) => (
          <Field key={field} id={`mp-${field}`} label={field} error={violationFor(error, on(field))}>
            <input id={`mp-${field}`} type="number" step={step} value={form.values[field] ?? ""} onChange={(e) => setValue(field, e.target.value)} />
          </Field>
        ))}
        {method === TrainingMethod.GRPO && (
          <>
            <Field id="mp-loss_type" label="loss_type" error={violationFor(error, on("loss_type"))}>
              <select id="mp-loss_type" value={form.values.loss_type ?? ""} onChange={(e) => setValue("loss_type", e.target.value)}>
                <option value="">dapo ({t("default")})</option>
                {LOSSES.map((l) => (
                  <option key={l} value={l}>
                    {l}
                  </option>
                ))}
              </select>
            </Field>
            <Field id="mp-scale_rewards" label="scale_rewards" error={violationFor(error, on("scale_rewards"))}>
              <select id="mp-scale_rewards" value={form.values.scale_rewards ?? ""} onChange={(e) => setValue("scale_rewards", e.target.value)}>
                <option value="">group ({t("default")})</option>
                {SCALINGS.map((s) => (
                  <option key={s} value={s}>
                    {s}
                  </option>
                ))}
              </select>
            </Field>
            <Field id="mp-reward_model" label="reward_model" error={violationFor(error, on("reward_model"))}>
              <input id="mp-reward_model" value={form.values.reward_model ?? ""} placeholder="projects/…/models/rm/versions/1" onChange={(e) => setValue("reward_model", e.target.value)} />
            </Field>
          </>
        )}
      </div>
      {method === TrainingMethod.GRPO && (
        <>
          <h3>{t("rewards")}</h3>
          {violationFor(error, on("rewards")) && (
            <p className="field-error" role="alert">
              {violationFor(error, on("rewards"))}
            </p>
          )}
          {form.rewards.map((r, i) => (
            <div className="inline-form reward" key={i} data-testid={`reward-${i}`}>
              <Field id={`reward-${i}-type`} label={`${t("reward")} ${i + 1}`} error={violationFor(error, on(`rewards[${i}].type`))}>
                <select id={`reward-${i}-type`} value={r.type} onChange={(e) => setReward(i, { type: e.target.value })}>
                  {REWARD_TYPES.map((type) => (
                    <option key={type} value={type}>
                      {type}
                    </option>
                  ))}
                </select>
              </Field>
              {r.type === "regex" && (
                <Field id={`reward-${i}-pattern`} label={t("pattern")} error={violationFor(error, on(`rewards[${i}].pattern`))}>
                  <input id={`reward-${i}-pattern`} value={r.pattern} onChange={(e) => setReward(i, { pattern: e.target.value })} placeholder="最终得分：\d+" />
                </Field>
              )}
              {r.type === "json_fields" && (
                <Field id={`reward-${i}-fields`} label={t("requiredFields")} error={violationFor(error, on(`rewards[${i}].required_fields`))}>
                  <input id={`reward-${i}-fields`} value={r.fields} onChange={(e) => setReward(i, { fields: e.target.value })} placeholder="score, reason" />
                </Field>
              )}
              {r.type === "word_count" && (
                <Field id={`reward-${i}-words`} label={t("targetWords")} error={violationFor(error, on(`rewards[${i}].target_words`))}>
                  <input id={`reward-${i}-words`} type="number" value={r.targetWords} placeholder="0" onChange={(e) => setReward(i, { targetWords: e.target.value })} />
                </Field>
              )}
              {r.type === "grader" && (
                <Field id={`reward-${i}-grader`} label={t("graderJson")} error={violationFor(error, on(`rewards[${i}].grader`))}>
                  <textarea id={`reward-${i}-grader`} rows={3} value={r.grader} onChange={(e) => setReward(i, { grader: e.target.value })} />
                </Field>
              )}
              <Field id={`reward-${i}-weight`} label={t("weight")} error={violationFor(error, on(`rewards[${i}].weight`))}>
                <input id={`reward-${i}-weight`} type="number" step="any" value={r.weight} placeholder="1" onChange={(e) => setReward(i, { weight: e.target.value })} />
              </Field>
              <button type="button" className="secondary" onClick={() => props.onChange({ ...form, rewards: form.rewards.filter((_, j) => j !== i) })}>
                {t("remove")}
              </button>
            </div>
          ))}
          <button
            type="button"
            className="secondary"
            onClick={() => props.onChange({ ...form, rewards: [...form.rewards, { type: "regex", pattern: "", fields: "", targetWords: "", grader: "", weight: "" }] })}
          >
            {t("addReward")}
          </button>
        </>
      )}
    </fieldset>
  );
}

export type ResourcesForm = { accelerators: string; nodes: string; kind: string; memoryGiB: string };
export const emptyResources = (): ResourcesForm => ({ accelerators: "", nodes: "", kind: "", memoryGiB: "" });

/** The job's resources message; undefined when nothing is asked for (one process, any worker). */
export function resources(form: ResourcesForm) {
  if (!form.accelerators && !form.nodes && !form.kind && !form.memoryGiB) return undefined;
  return {
    acceleratorsPerNode: Number(form.accelerators || 0),
    nodes: Number(form.nodes || 0),
    acceleratorKind: form.kind,
    acceleratorMemoryBytes: BigInt(Math.round(Number(form.memoryGiB || 0) * 2 ** 30)),
  };
}

/** Devices, nodes, kind and memory the job needs, beside what the live workers have. */
export function ResourceSettings(props: { api: Api; form: ResourcesForm; onChange: (form: ResourcesForm) => void; error: Failure | null }) {
  const { t } = useT();
  const { form, error } = props;
  const workers = useAsync(() => props.api.train.listWorkers({}), [props.api]);
  const set = (change: Partial<ResourcesForm>) => props.onChange({ ...form, ...change });
  const on = (field: string) => violationFor(error, `resources.${field}`);
  const gib = (bytes: bigint) => `${(Number(bytes) / 2 ** 30).toFixed(0)} GiB`;
  return (
    <fieldset className="method-settings">
      <legend>{t("resources")}</legend>
      <div className="inline-form">
        <Field id="res-accelerators" label={t("acceleratorsPerNode")} error={on("accelerators_per_node")}>
          <input id="res-accelerators" type="number" value={form.accelerators} placeholder="1" onChange={(e) => set({ accelerators: e.target.value })} />
        </Field>
        <Field id="res-nodes" label={t("nodes")} error={on("nodes")}>
          <input id="res-nodes" type="number" value={form.nodes} placeholder="1" onChange={(e) => set({ nodes: e.target.value })} />
        </Field>
        <Field id="res-kind" label={t("acceleratorKind")} error={on("accelerator_kind")}>
          <select id="res-kind" value={form.kind} onChange={(e) => set({ kind: e.target.value })}>
            <option value="">{t("anyKind")}</option>
            <option value="cuda">cuda</option>
            <option value="cpu">cpu</option>
          </select>
        </Field>
        <Field id="res-memory" label={t("memoryGiB")} error={on("accelerator_memory_bytes")}>
          <input id="res-memory" type="number" step="any" value={form.memoryGiB} placeholder="0" onChange={(e) => set({ memoryGiB: e.target.value })} />
        </Field>
      </div>
      <p className="muted" data-testid="live-workers">
        {t("liveWorkers")}:{" "}
        {(workers.value?.workers ?? [])
          .filter((w) => w.live)
          .map((w) => `${w.name} (${w.acceleratorKind} × ${w.accelerators}, ${gib(w.acceleratorKind === "cpu" ? w.hostMemoryBytes : w.acceleratorMemoryBytes)}${w.busy ? `, ${t("busy")}` : ""})`)
          .join(" · ") || t("none")}
      </p>
    </fieldset>
  );
}

export type AdvancedForm = {
  numbers: Record<string, string>;
  scheduler: string;
  promptTruncation: string;
  packing: boolean;
  truncateOverlength: boolean;
  ignoreLossAnomalies: boolean;
};
export const emptyAdvanced = (): AdvancedForm => ({
  numbers: {},
  scheduler: "",
  promptTruncation: "",
  packing: false,
  truncateOverlength: false,
  ignoreLossAnomalies: false,
});
// (field in the API, field in the message, input step)
const ADVANCED: [string, string, string][] = [
  ["warmup_ratio", "warmupRatio", "any"],
  ["weight_decay", "weightDecay", "any"],
  ["gradient_accumulation_steps", "gradientAccumulationSteps", "1"],
  ["seed", "seed", "1"],
  ["early_stopping.patience", "patience", "1"],
  ["early_stopping.min_delta", "minDelta", "any"],
];

/** The advanced hyperparameters the form holds, as message fields to merge into the guided ones. */
export function advancedHyperparameters(form: AdvancedForm): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const stopping: Record<string, number> = {};
  for (const [field, message] of ADVANCED) {
    const text = form.numbers[field];
    if (!text) continue;
    if (field.startsWith("early_stopping.")) stopping[message] = Number(text);
    else out[message] = message === "seed" ? BigInt(Math.trunc(Number(text))) : Number(text);
  }
  if (Object.keys(stopping).length > 0) out.earlyStopping = stopping;
  if (form.scheduler) out.scheduler = form.scheduler;
  if (form.promptTruncation) out.promptTruncation = form.promptTruncation;
  if (form.packing) out.packing = true;
  if (form.truncateOverlength) out.truncateOverlength = true;
  if (form.ignoreLossAnomalies) out.ignoreLossAnomalies = true;
  return out;
}

/** The rarer hyperparameters, folded away: schedule, regularisation, accumulation, seed, early
 * stopping, packing and over-length handling. */
export function AdvancedSettings(props: { form: AdvancedForm; onChange: (form: AdvancedForm) => void; error: Failure | null }) {
  const { t } = useT();
  const { form, error } = props;
  const set = (change: Partial<AdvancedForm>) => props.onChange({ ...form, ...change });
  const on = (field: string) => violationFor(error, `hyperparameters.${field}`);
  const id = (field: string) => `adv-${field.replace(".", "-")}`;
  const invalid = ADVANCED.some(([field]) => on(field)) || ["scheduler", "prompt_truncation"].some((f) => on(f));
  return (
    <details className="method-settings" open={invalid || undefined}>
      <summary>{t("advanced")}</summary>
      <div className="inline-form">
        {ADVANCED.map(([field, , step]) => (
          <Field key={field} id={id(field)} label={field} error={on(field)}>
            <input id={id(field)} type="number" step={step} value={form.numbers[field] ?? ""} onChange={(e) => set({ numbers: { ...form.numbers, [field]: e.target.value } })} />
          </Field>
        ))}
        <Field id="adv-scheduler" label="scheduler" error={on("scheduler")}>
          <select id="adv-scheduler" value={form.scheduler} onChange={(e) => set({ scheduler: e.target.value })}>
            <option value="">linear ({t("default")})</option>
            {["linear", "cosine", "constant", "constant_with_warmup"].map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
        </Field>
        <Field id="adv-prompt_truncation" label="prompt_truncation" error={on("prompt_truncation")}>
          <select id="adv-prompt_truncation" value={form.promptTruncation} onChange={(e) => set({ promptTruncation: e.target.value })}>
            <option value="">none ({t("default")})</option>
            <option value="left">left</option>
            <option value="middle">middle</option>
          </select>
        </Field>
      </div>
      <label className="check">
        <input type="checkbox" checked={form.packing} onChange={(e) => set({ packing: e.target.checked })} /> packing — {t("packingHelp")}
      </label>
      <label className="check">
        <input type="checkbox" checked={form.truncateOverlength} onChange={(e) => set({ truncateOverlength: e.target.checked })} /> truncate_overlength —{" "}
        {t("truncateHelp")}
      </label>
      <label className="check">
        <input type="checkbox" checked={form.ignoreLossAnomalies} onChange={(e) => set({ ignoreLossAnomalies: e.target.checked })} /> ignore_loss_anomalies —{" "}
        {t("anomaliesHelp")}
      </label>
    </details>
  );
}
