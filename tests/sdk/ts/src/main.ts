// A program that uses the generated TypeScript client: submit a task, read it back,
// and read a 404 as the document's Problem. `npm run check` compiles it with
// `tsc --strict`; tests/sdk/test_typescript_client.py runs the built program against a
// live server: `node dist/src/main.js` with CHATSYS_URL and CHATSYS_API_KEY. It prints
// one JSON line of what it saw; any surprise exits non-zero.
import createClient from "openapi-fetch";

import type { components, paths } from "../generated/chatsys.js";

type Problem = components["schemas"]["Problem"];
type FieldError = components["schemas"]["FieldError"];

const baseUrl = process.env.CHATSYS_URL ?? "http://127.0.0.1:8000";
const key = process.env.CHATSYS_API_KEY;
const client = createClient<paths>({
  baseUrl,
  headers: key ? { Authorization: `Bearer ${key}` } : {},
});

function fail(message: string): never {
  throw new Error(message);
}

async function main(): Promise<void> {
  const created = await client.POST("/v1/tasks", {
    body: { input: "hello from TypeScript" },
    headers: { "Idempotency-Key": "ts-sdk-1" },
  });
  if (created.error !== undefined) {
    fail(`create answered ${created.response.status}: ${created.error.detail}`);
  }
  const id: string = created.data.id;

  const got = await client.GET("/v1/tasks/{task_id}", {
    params: { path: { task_id: id } },
  });
  if (got.error !== undefined) {
    fail(`get answered ${got.response.status}: ${got.error.detail}`);
  }
  const status: string = got.data.status;

  const missingId = "0b9e6c4e-8a1f-4a8e-9a57-4d1c3f0e2b71";
  const missing = await client.GET("/v1/tasks/{task_id}", {
    params: { path: { task_id: missingId } },
  });
  if (missing.data !== undefined) {
    fail(`task ${missingId} exists`);
  }
  const problem: Problem = missing.error; // a 404's body is typed as the Problem
  const errors: FieldError[] | undefined = problem.errors; // absent, not null, when none
  if (missing.response.status !== 404 || problem.status !== 404) {
    fail(`expected a 404 problem, got ${missing.response.status}: ${JSON.stringify(problem)}`);
  }
  const contentType = missing.response.headers.get("content-type");

  const refused = await client.POST("/v1/tasks", { body: { input: "NUL \u0000 inside" } });
  if (refused.error === undefined) {
    fail(`a NUL in the input was accepted: ${refused.response.status}`);
  }
  const locations = (refused.error.errors ?? []).map((e: FieldError) => e.location);

  console.log(
    JSON.stringify({
      created: {
        id,
        status: created.response.status,
        location: created.response.headers.get("location"),
      },
      got: { id: got.data.id, status },
      missing: {
        status: problem.status,
        type: problem.type,
        title: problem.title,
        detail: problem.detail,
        instance: problem.instance,
        request_id: problem.request_id,
        header_request_id: missing.response.headers.get("x-request-id"),
        content_type: contentType,
        has_errors: errors !== undefined,
      },
      refused: { status: refused.response.status, locations },
    }),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
