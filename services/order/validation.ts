/**
 * Request validation for every RPC of a Connect service, as one interceptor: each request message,
 * unary or streamed, is checked against its buf.validate rules (protovalidate) before the handler
 * sees it, and an invalid one ends the call with InvalidArgument naming each field, the
 * violations attached as a typed detail (assertRequestValid).
 */
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import type { Interceptor } from "@connectrpc/connect";
import { assertRequestValid } from "./orders.ts";

/** Yields the messages of a request stream, each validated before the handler takes it. */
async function* validated<Desc extends DescMessage>(schema: Desc, messages: AsyncIterable<MessageShape<Desc>>): AsyncIterable<MessageShape<Desc>> {
  for await (const message of messages) {
    assertRequestValid(schema, message);
    yield message;
  }
}

/** Validates the request message(s) of every call, unary and streaming alike. */
export const validateRequests: Interceptor = (next) => async (req) => {
  if (!req.stream) {
    assertRequestValid(req.method.input, req.message);
    return await next(req);
  }
  return await next({ ...req, message: validated(req.method.input, req.message) });
};
