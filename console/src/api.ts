// The console's only way to the platform: clients generated from protos/ (protoc-gen-es), over
// gRPC-Web to the console process, which forwards each call to its service unchanged. The bearer
// key goes with every call; the services check it as for any client.
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { UploadDatasetVersionRequestSchema } from "./gen/tuneforge/data/v1/data_service_pb";
import { AugmentationService } from "./gen/tuneforge/data/v1/augmentation_service_pb";
import { DataService } from "./gen/tuneforge/data/v1/data_service_pb";
import { DatasetVersionSchema, type DatasetVersion } from "./gen/tuneforge/data/v1/dataset_pb";
import { EvalService } from "./gen/tuneforge/eval/v1/eval_service_pb";
import { IamService } from "./gen/tuneforge/iam/v1/iam_service_pb";
import { RegistryService } from "./gen/tuneforge/registry/v1/registry_service_pb";
import { ServeService } from "./gen/tuneforge/serve/v1/serve_service_pb";
import { TrainService } from "./gen/tuneforge/train/v1/train_service_pb";

export type Session = { apiKey: string; project: string };

export type Api = {
  session: Session;
  parent: string;
  registry: Client<typeof RegistryService>;
  data: Client<typeof DataService>;
  augment: Client<typeof AugmentationService>;
  train: Client<typeof TrainService>;
  evals: Client<typeof EvalService>;
  serve: Client<typeof ServeService>;
  iam: Client<typeof IamService>;
};

const SESSION_KEY = "tuneforge.session";

export function savedSession(): Session | null {
  try {
    const value = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    return value && typeof value.apiKey === "string" && typeof value.project === "string" ? value : null;
  } catch {
    return null;
  }
}

export function saveSession(session: Session | null): void {
  if (session) sessionStorage.setItem(SESSION_KEY, JSON.stringify(session));
  else sessionStorage.removeItem(SESSION_KEY);
}

export function makeApi(session: Session, onUnauthenticated: (error: ConnectError) => void): Api {
  const auth: Interceptor = (next) => async (request) => {
    request.header.set("authorization", `Bearer ${session.apiKey}`);
    try {
      return await next(request);
    } catch (error) {
      const failure = ConnectError.from(error);
      if (failure.code === Code.Unauthenticated) onUnauthenticated(failure);
      throw failure;
    }
  };
  const transport = createGrpcWebTransport({ baseUrl: window.location.origin, interceptors: [auth] });
  return {
    session,
    parent: `projects/${session.project}`,
    registry: createClient(RegistryService, transport),
    data: createClient(DataService, transport),
    augment: createClient(AugmentationService, transport),
    train: createClient(TrainService, transport),
    evals: createClient(EvalService, transport),
    serve: createClient(ServeService, transport),
    iam: createClient(IamService, transport),
  };
}

export function requestId(): string {
  return crypto.randomUUID();
}

// -- errors: the services' google.rpc details (BadRequest, ErrorInfo), decoded by hand (the
// googleapis protos are not part of protos/).

export type Violation = { field: string; description: string };
export type Failure = { code: string; message: string; reason: string; violations: Violation[] };

function readStrings(bytes: Uint8Array, fields: number[]): Record<number, string> {
  const reader = new BinaryReader(bytes);
  const out: Record<number, string> = {};
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    if (fields.includes(number) && wireType === 2) out[number] = reader.string();
    else reader.skip(wireType);
  }
  return out;
}

function violations(bytes: Uint8Array): Violation[] {
  const reader = new BinaryReader(bytes);
  const out: Violation[] = [];
  while (reader.pos < reader.len) {
    const [number, wireType] = reader.tag();
    if (number === 1 && wireType === 2) {
      const fields = readStrings(reader.bytes(), [1, 2]);
      out.push({ field: fields[1] ?? "", description: fields[2] ?? "" });
    } else reader.skip(wireType);
  }
  return out;
}

export function failure(error: unknown): Failure {
  const e = ConnectError.from(error);
  const out: Failure = { code: Code[e.code] ?? "Unknown", message: e.rawMessage, reason: "", violations: [] };
  for (const detail of e.details) {
    if (!("type" in detail)) continue;
    if (detail.type === "google.rpc.BadRequest") out.violations.push(...violations(detail.value));
    if (detail.type === "google.rpc.ErrorInfo") out.reason = readStrings(detail.value, [1])[1] ?? "";
  }
  return out;
}

// -- uploads: a client-streaming call, sent as one gRPC-Web body holding every message (the
// console process forwards them as the stream; browsers cannot stream a request body).

function framed<Desc extends DescMessage>(schema: Desc, messages: MessageShape<Desc>[]): Uint8Array {
  const parts = messages.map((m) => toBinary(schema, m));
  const body = new Uint8Array(parts.reduce((n, p) => n + 5 + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    new DataView(body.buffer).setUint32(offset + 1, part.length);
    body.set(part, offset + 5);
    offset += 5 + part.length;
  }
  return body;
}

async function sha256(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as BufferSource);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function uploadDataset(api: Api, dataset: string, file: File, format = 0): Promise<DatasetVersion> {
  const bytes = new Uint8Array(await file.arrayBuffer());
  const chunk = 1 << 20;
  const messages = [
    create(UploadDatasetVersionRequestSchema, {
      payload: {
        case: "header",
        value: {
          parent: `${api.parent}/datasets/${dataset}`,
          options: { filename: file.name.replace(/[^A-Za-z0-9._-]/g, "_"), format },
          requestId: requestId(),
        },
      },
    }),
  ];
  for (let at = 0; at < bytes.length; at += chunk) {
    messages.push(create(UploadDatasetVersionRequestSchema, { payload: { case: "data", value: bytes.slice(at, at + chunk) } }));
  }
  messages.push(create(UploadDatasetVersionRequestSchema, { payload: { case: "finish", value: { sha256: await sha256(bytes) } } }));
  const response = await fetch("/tuneforge.data.v1.DataService/UploadDatasetVersion", {
    method: "POST",
    headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", authorization: `Bearer ${api.session.apiKey}` },
    body: framed(UploadDatasetVersionRequestSchema, messages) as BodyInit,
  });
  const body = new Uint8Array(await response.arrayBuffer());
  let version: DatasetVersion | null = null;
  let status = response.headers.get("grpc-status") ?? "";
  let message = decodeURIComponent(response.headers.get("grpc-message") ?? "");
  for (let offset = 0; offset + 5 <= body.length; ) {
    const flag = body[offset];
    const length = new DataView(body.buffer, body.byteOffset + offset + 1, 4).getUint32(0);
    const payload = body.slice(offset + 5, offset + 5 + length);
    if (flag & 0x80) {
      for (const line of new TextDecoder().decode(payload).split("\r\n")) {
        const [key, ...rest] = line.split(":");
        if (key === "grpc-status") status = rest.join(":").trim();
        if (key === "grpc-message") message = decodeURIComponent(rest.join(":").trim());
      }
    } else version = fromBinary(DatasetVersionSchema, payload);
    offset += 5 + length;
  }
  if (status !== "0" || !version) throw new ConnectError(message || "the upload failed", Number(status) || Code.Unknown);
  return version;
}

/** A dataset version as the API names it, from `dataset/N` or a full name. */
export function versionName(api: Api, text: string): string {
  const value = text.trim();
  if (value.startsWith("projects/")) return value;
  const [dataset, version] = value.replace("/versions/", "/").split("/");
  return `${api.parent}/datasets/${dataset}/versions/${version ?? "1"}`;
}

/** A dataset version's name as the project's pages show it: `dataset/versions/N`. */
export function versionText(api: Api, name: string): string {
  return name.replace(`${api.parent}/datasets/`, "");
}

export function short(name: string): string {
  return name.split("/").slice(-1)[0] ?? name;
}

export function date(ts: { seconds: bigint } | undefined): string {
  return ts ? new Date(Number(ts.seconds) * 1000).toLocaleString() : "";
}
