/**
 * The order saga as a pure state machine: `decide(state, input, context)` returns the next state and
 * the effects to carry out (records to publish, compensations to park). No I/O here; the Kafka and
 * Redis shell around it lives in handlers.ts. Reservation and payment run in parallel after
 * validation; whichever way the saga ends, every step that was taken is undone or confirmed, also
 * when its answer arrives after the end. Completion confirms the reservation by itself: the
 * inventory service commits it when it reads orders.completed, so no commit command is sent.
 * The saga alone decides when a reservation expires (at its expires_at, if the order has not
 * completed by then: it fails and asks for the release), so completion and expiry are decided in
 * one place, under one compare-and-set, and an order never completes on units back on sale.
 * A cancel that arrives before its order (the two topics are read independently) is not dropped:
 * the decision asks to keep it (Decision.earlyCancel), and when orders.created arrives with it the
 * order ends CANCELLED at once, nothing charged or reserved.
 * Status changes are announced by the lifecycle records (orders.validated, completed, failed,
 * cancelled) alone; orders.audit is for operators' actions.
 */
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";
import { FailureReason, OrderStatus, type PaymentMethod } from "../../gen/orderflow/v1/common_pb.ts";
import {
  EmailRequestedSchema,
  EmailTemplate,
  InventoryAction,
  InventoryActionRequestedSchema,
  OrderCancelledSchema,
  OrderCompletedSchema,
  OrderFailedSchema,
  OrderValidatedSchema,
  PaymentAction,
  PaymentRequestedSchema,
  ReleaseReason,
  type InventoryReleased,
  type InventoryReservationFailed,
  type InventoryReserved,
  type OrderCancelRequested,
  type OrderCreated,
  type PaymentCompleted,
  type PaymentFailed,
  type PaymentRefunded,
} from "../../gen/orderflow/v1/events_pb.ts";

/** Where each parallel step is; "none" when it was never started (the order failed validation). */
export type PaymentStep = "none" | "requested" | "charged" | "declined" | "refund_requested" | "refunded";
/**
 * Where the reservation is. "committed" once the saga completed (the inventory service commits on
 * orders.completed).
 */
export type StockStep = "none" | "requested" | "reserved" | "short" | "release_requested" | "released" | "committed";
export type Compensation = "refund" | "release";

/** A compensation sent and not yet confirmed. */
export interface PendingCompensation {
  readonly attempts: number;
  readonly dueMs: number;
}

/** Everything the orchestrator remembers about one order. Serialisable as JSON. */
export interface SagaState {
  readonly orderId: string;
  readonly customerId: string;
  readonly customerEmail: string;
  readonly currency: string;
  /** Decimal string of minor units (bigint does not survive JSON). */
  readonly totalMinor: string;
  readonly lines: readonly { productId: string; quantity: number; unitPriceMinor: string }[];
  readonly instrument: { method: PaymentMethod; token: string; cardLast4: string };
  /** When the order was placed (its OrderCreated.created_at), repeated on lifecycle events for the read model. */
  readonly createdAtMs?: number;
  readonly status: OrderStatus;
  readonly payment: PaymentStep;
  readonly paymentId?: string;
  readonly stock: StockStep;
  readonly reservationId?: string;
  /** When the reservation expires (InventoryReserved.expires_at): the order must complete before it. */
  readonly reservationExpiresAtMs?: number;
  readonly failure?: { reason: FailureReason; detail: string };
  /** When the running steps must have answered; undefined once the saga no longer waits on them. */
  readonly deadlineMs?: number;
  readonly pending: Partial<Record<Compensation, PendingCompensation>>;
  readonly parked: readonly Compensation[];
}

/** A cancel that came before its order's orders.created: kept until the order arrives, then applied. */
export interface EarlyCancel {
  readonly reason: string;
  readonly requestedBy: string;
}

/** What moves the saga. */
export type SagaInput =
  /** `earlyCancel`: a cancel kept for this order before it arrived. */
  | { kind: "order-created"; event: OrderCreated; earlyCancel?: EarlyCancel }
  | { kind: "payment-completed"; event: PaymentCompleted }
  | { kind: "payment-failed"; event: PaymentFailed }
  | { kind: "payment-refunded"; event: PaymentRefunded }
  | { kind: "stock-reserved"; event: InventoryReserved }
  | { kind: "stock-short"; event: InventoryReservationFailed }
  | { kind: "stock-released"; event: InventoryReleased }
  | { kind: "cancel-requested"; event: OrderCancelRequested }
  | { kind: "tick" };

/** A catalog entry as validation needs it. */
export interface CatalogPrice {
  readonly currency: string;
  readonly priceMinor: bigint;
}

export interface SagaContext {
  readonly nowMs: number;
  /** Catalog entries of the order's SKUs (missing = unknown SKU). */
  readonly products: ReadonlyMap<string, CatalogPrice>;
  /** How long payment and reservation may take together. */
  readonly stepTimeoutMs: number;
  /** Largest order total accepted, in minor units. */
  readonly maxOrderMinor: bigint;
  /** Wait before re-sending an unconfirmed compensation; doubles per attempt. */
  readonly compensationRetryMs: number;
  /** Attempts before a compensation is parked for an operator. */
  readonly compensationMaxAttempts: number;
}

/** A record to publish: catalog topic, schema, message, key. */
export interface Publish<Desc extends DescMessage = DescMessage> {
  readonly kind: "publish";
  readonly topic: string;
  readonly schema: Desc;
  readonly message: MessageInitShape<Desc>;
  readonly key: string;
}

/** A compensation that kept failing, for an operator to resolve. */
export interface Park {
  readonly kind: "park";
  readonly compensation: Compensation;
  readonly attempts: number;
}

export type Effect = Publish | Park;

export interface Decision {
  /** Undefined when the input does not concern a saga we know (nothing to do). */
  readonly state: SagaState | undefined;
  readonly effects: readonly Effect[];
  /** A cancel for an order not seen yet: to keep, and to give back with its orders.created. */
  readonly earlyCancel?: EarlyCancel;
}

const terminal = new Set([OrderStatus.COMPLETED, OrderStatus.FAILED, OrderStatus.CANCELLED]);

/** OrderFailed.detail's max_len (events.proto): a longer detail (a shortage over many lines) is cut to fit. */
export const FAILURE_DETAIL_MAX = 1000;

/** `detail` within FAILURE_DETAIL_MAX characters, cut at a code point and marked when cut. */
function boundedDetail(detail: string): string {
  const chars = Array.from(detail);
  return chars.length <= FAILURE_DETAIL_MAX ? detail : `${chars.slice(0, FAILURE_DETAIL_MAX - 1).join("")}…`;
}

function publish<Desc extends DescMessage>(topic: string, schema: Desc, message: MessageInitShape<Desc>, key: string): Publish {
  return { kind: "publish", topic, schema, message, key };
}

function money(state: SagaState) {
  return { currencyCode: state.currency, amountMinor: BigInt(state.totalMinor) };
}

function lineItems(state: SagaState) {
  return state.lines.map((line) => ({
    productId: line.productId,
    quantity: line.quantity,
    unitPrice: { currencyCode: state.currency, amountMinor: BigInt(line.unitPriceMinor) },
  }));
}

/** Business validation; returns the reason it fails, or undefined. */
export function validateOrder(event: OrderCreated, context: SagaContext): string | undefined {
  const currency = event.total?.currencyCode ?? "";
  let sum = 0n;
  for (const item of event.items) {
    const product = context.products.get(item.productId);
    if (product === undefined) return `unknown product ${item.productId}`;
    if (product.currency !== currency) return `${item.productId} is sold in ${product.currency}, not ${currency}`;
    const price = item.unitPrice?.amountMinor ?? -1n;
    if (price !== product.priceMinor) return `${item.productId} costs ${product.priceMinor} minor units, not ${price}`;
    sum += price * BigInt(item.quantity);
  }
  if (sum !== event.total?.amountMinor) return `total ${event.total?.amountMinor} does not equal the sum of the lines ${sum}`;
  if (sum > context.maxOrderMinor) return `total ${sum} exceeds the limit ${context.maxOrderMinor}`;
  return undefined;
}

class Step {
  readonly effects: Effect[] = [];
  constructor(
    public state: SagaState,
    readonly context: SagaContext,
  ) {}

  set(patch: Partial<SagaState>): void {
    this.state = { ...this.state, ...patch };
  }

  email(template: EmailTemplate, params: Record<string, string> = {}): void {
    const s = this.state;
    this.effects.push(
      publish("notifications.email", EmailRequestedSchema, {
        notificationId: `${s.orderId}:${EmailTemplate[template]}`,
        orderId: s.orderId,
        customerId: s.customerId,
        email: s.customerEmail,
        template,
        params: { total: `${s.totalMinor} ${s.currency}`, ...params },
        requestedAt: timestampFromMs(this.context.nowMs),
      }, s.customerId),
    );
  }

  requestRefund(): void {
    const s = this.state;
    this.set({ payment: "refund_requested", pending: { ...s.pending, refund: this.nextAttempt(s.pending.refund) } });
    this.effects.push(
      publish("payments.requested", PaymentRequestedSchema, {
        orderId: s.orderId,
        action: PaymentAction.REFUND,
        amount: money(s),
        paymentId: s.paymentId ?? "",
        customerId: s.customerId,
        requestedAt: timestampFromMs(this.context.nowMs),
      }, s.orderId),
    );
  }

  requestRelease(reason: ReleaseReason): void {
    const s = this.state;
    this.set({ stock: "release_requested", pending: { ...s.pending, release: this.nextAttempt(s.pending.release) } });
    this.effects.push(
      publish("inventory.requested", InventoryActionRequestedSchema, {
        orderId: s.orderId,
        action: InventoryAction.RELEASE,
        reason,
        requestedAt: timestampFromMs(this.context.nowMs),
      }, s.orderId),
    );
  }

  private nextAttempt(previous: PendingCompensation | undefined): PendingCompensation {
    const attempts = (previous?.attempts ?? 0) + 1;
    return { attempts, dueMs: this.context.nowMs + this.context.compensationRetryMs * 2 ** (attempts - 1) };
  }

  settle(compensation: Compensation): void {
    const pending = { ...this.state.pending };
    delete pending[compensation];
    this.set({ pending });
  }

  /** Undo whatever of the two steps is done; steps still running are undone when they answer. */
  compensate(releaseReason: ReleaseReason): void {
    if (this.state.payment === "charged") this.requestRefund();
    if (this.state.stock === "reserved") this.requestRelease(releaseReason);
  }

  fail(reason: FailureReason, fullDetail: string, template: EmailTemplate, releaseReason = ReleaseReason.COMPENSATION): void {
    const detail = boundedDetail(fullDetail);
    this.compensate(releaseReason);
    this.set({ status: OrderStatus.FAILED, failure: { reason, detail }, deadlineMs: undefined });
    const s = this.state;
    this.effects.push(
      publish("orders.failed", OrderFailedSchema, {
        orderId: s.orderId,
        customerId: s.customerId,
        reason,
        detail,
        refunded: s.payment === "refund_requested",
        failedAt: timestampFromMs(this.context.nowMs),
        ...(s.createdAtMs === undefined ? {} : { createdAt: timestampFromMs(s.createdAtMs) }),
      }, s.orderId),
    );
    this.email(template, { reason: detail });
  }

  /** True once the reservation's expiry has come (it is then released, never completed on). */
  reservationExpired(): boolean {
    const expiresAt = this.state.reservationExpiresAtMs;
    return this.state.stock === "reserved" && expiresAt !== undefined && this.context.nowMs >= expiresAt;
  }

  expire(): void {
    this.fail(FailureReason.TIMEOUT, "the reservation expired before payment finished", EmailTemplate.ORDER_FAILED, ReleaseReason.EXPIRED);
  }

  completeIfReady(): void {
    const s = this.state;
    if (s.status !== OrderStatus.VALIDATED || s.payment !== "charged" || s.stock !== "reserved") return;
    if (this.reservationExpired()) {
      this.expire();
      return;
    }
    this.set({ status: OrderStatus.COMPLETED, stock: "committed", deadlineMs: undefined });
    this.effects.push(
      publish("orders.completed", OrderCompletedSchema, {
        orderId: s.orderId,
        customerId: s.customerId,
        total: money(s),
        paymentId: s.paymentId ?? "",
        reservationId: s.reservationId ?? "",
        completedAt: timestampFromMs(this.context.nowMs),
      }, s.orderId),
    );
    this.email(EmailTemplate.ORDER_CONFIRMED);
  }
}

function start(event: OrderCreated, context: SagaContext, earlyCancel: EarlyCancel | undefined): Decision {
  const state: SagaState = {
    orderId: event.orderId,
    customerId: event.customerId,
    customerEmail: event.customerEmail,
    currency: event.total?.currencyCode ?? "",
    totalMinor: String(event.total?.amountMinor ?? 0n),
    lines: event.items.map((item) => ({
      productId: item.productId,
      quantity: item.quantity,
      unitPriceMinor: String(item.unitPrice?.amountMinor ?? 0n),
    })),
    instrument: {
      method: event.payment?.method ?? 0,
      token: event.payment?.token ?? "",
      cardLast4: event.payment?.cardLast4 ?? "",
    },
    ...(event.createdAt === undefined ? {} : { createdAtMs: timestampDate(event.createdAt).getTime() }),
    status: OrderStatus.PENDING,
    payment: "requested",
    stock: "requested",
    pending: {},
    parked: [],
  };
  const step = new Step(state, context);
  if (earlyCancel !== undefined) {
    step.set({ payment: "none", stock: "none", status: OrderStatus.CANCELLED });
    step.effects.push(cancelled(step.state, earlyCancel.reason, context));
    step.email(EmailTemplate.ORDER_CANCELLED);
    return { state: step.state, effects: step.effects };
  }
  const invalid = validateOrder(event, context);
  if (invalid !== undefined) {
    step.set({ payment: "none", stock: "none" });
    step.fail(FailureReason.VALIDATION, invalid, EmailTemplate.ORDER_FAILED);
    return { state: step.state, effects: step.effects };
  }
  step.set({ status: OrderStatus.VALIDATED, deadlineMs: context.nowMs + context.stepTimeoutMs });
  step.effects.push(
    publish("orders.validated", OrderValidatedSchema, {
      orderId: state.orderId,
      customerId: state.customerId,
      items: lineItems(state),
      total: money(state),
      validatedAt: timestampFromMs(context.nowMs),
      cardLast4: state.instrument.cardLast4,
      ...(event.createdAt === undefined ? {} : { createdAt: event.createdAt }),
    }, state.orderId),
    publish("payments.requested", PaymentRequestedSchema, {
      orderId: state.orderId,
      action: PaymentAction.CHARGE,
      amount: money(state),
      instrument: event.payment ?? {},
      customerId: state.customerId,
      requestedAt: timestampFromMs(context.nowMs),
    }, state.orderId),
  );
  return { state: step.state, effects: step.effects };
}

function onTick(step: Step): void {
  const { state, context } = step;
  if (state.status === OrderStatus.VALIDATED && step.reservationExpired()) {
    step.expire();
    return;
  }
  if (state.status === OrderStatus.VALIDATED && state.deadlineMs !== undefined && context.nowMs >= state.deadlineMs) {
    const waiting = [state.payment === "requested" ? "payment" : "", state.stock === "requested" ? "reservation" : ""].filter(Boolean).join(" and ");
    step.fail(FailureReason.TIMEOUT, `${waiting || "a step"} did not answer in time`, EmailTemplate.ORDER_FAILED);
    return;
  }
  for (const compensation of ["refund", "release"] as const) {
    const pending = step.state.pending[compensation];
    if (pending === undefined || context.nowMs < pending.dueMs) continue;
    if (pending.attempts >= context.compensationMaxAttempts) {
      step.settle(compensation);
      step.set({ parked: [...step.state.parked, compensation] });
      step.effects.push({ kind: "park", compensation, attempts: pending.attempts });
      continue;
    }
    if (compensation === "refund") step.requestRefund();
    else step.requestRelease(ReleaseReason.COMPENSATION);
  }
}

/** The saga's next state and effects for one input. */
export function decide(state: SagaState | undefined, input: SagaInput, context: SagaContext): Decision {
  if (input.kind === "order-created") {
    return state === undefined ? start(input.event, context, input.earlyCancel) : { state, effects: [] };
  }
  if (state === undefined) {
    return input.kind === "cancel-requested" ? { state, effects: [], earlyCancel: { reason: input.event.reason, requestedBy: input.event.requestedBy } } : { state, effects: [] };
  }
  const step = new Step(state, context);
  const isTerminal = terminal.has(state.status);

  switch (input.kind) {
    case "payment-completed":
      if (state.payment !== "requested") break;
      step.set({ payment: "charged", paymentId: input.event.paymentId });
      if (isTerminal) step.requestRefund();
      else step.completeIfReady();
      break;
    case "payment-failed":
      if (state.payment !== "requested") break;
      step.set({ payment: "declined" });
      if (!isTerminal) step.fail(FailureReason.PAYMENT, input.event.message || "payment failed", EmailTemplate.PAYMENT_FAILED);
      break;
    case "payment-refunded":
      step.settle("refund");
      step.set({ payment: "refunded" });
      break;
    case "stock-reserved":
      if (state.stock !== "requested") break;
      step.set({
        stock: "reserved",
        reservationId: input.event.reservationId,
        ...(input.event.expiresAt === undefined ? {} : { reservationExpiresAtMs: timestampDate(input.event.expiresAt).getTime() }),
      });
      if (isTerminal) step.requestRelease(state.status === OrderStatus.CANCELLED ? ReleaseReason.CANCELLED : ReleaseReason.COMPENSATION);
      else step.completeIfReady();
      break;
    case "stock-short": {
      if (state.stock !== "requested") break;
      step.set({ stock: "short" });
      const detail = input.event.shortages.map((s) => `${s.productId}: ${s.requested} wanted, ${s.available} available`).join("; ");
      if (!isTerminal) step.fail(FailureReason.INVENTORY, detail || "out of stock", EmailTemplate.OUT_OF_STOCK);
      break;
    }
    case "stock-released":
      step.settle("release");
      if (input.event.reason === ReleaseReason.EXPIRED && state.status === OrderStatus.VALIDATED) {
        step.set({ stock: "released" });
        step.fail(FailureReason.TIMEOUT, "the reservation expired before payment finished", EmailTemplate.ORDER_FAILED);
      } else {
        step.set({ stock: "released" });
      }
      break;
    case "cancel-requested":
      if (state.status === OrderStatus.COMPLETED) {
        if (state.payment === "charged") step.requestRefund();
        step.set({ status: OrderStatus.CANCELLED });
        step.effects.push(cancelled(step.state, input.event.reason, context));
        step.email(EmailTemplate.ORDER_REFUNDED);
      } else if (!isTerminal) {
        step.compensate(ReleaseReason.CANCELLED);
        step.set({ status: OrderStatus.CANCELLED, deadlineMs: undefined });
        step.effects.push(cancelled(step.state, input.event.reason, context));
        step.email(EmailTemplate.ORDER_CANCELLED);
      }
      break;
    case "tick":
      onTick(step);
      break;
  }
  return { state: step.state, effects: step.effects };
}

function cancelled(state: SagaState, reason: string, context: SagaContext): Publish {
  return publish("orders.cancelled", OrderCancelledSchema, {
    orderId: state.orderId,
    customerId: state.customerId,
    reason,
    refunded: state.payment === "refund_requested",
    cancelledAt: timestampFromMs(context.nowMs),
  }, state.orderId);
}

/**
 * A saga is settled once it is terminal and waits on nothing: no deadline, no compensation to
 * re-send, none parked for an operator. Only a settled saga's record may expire (store.ts); until
 * then it is kept however long it takes.
 */
export function isSettled(state: SagaState): boolean {
  return terminal.has(state.status) && nextDueMs(state) === undefined && state.parked.length === 0;
}

/** The earliest time a tick could change this saga, or undefined when it waits on nothing. */
export function nextDueMs(state: SagaState): number | undefined {
  const expiry = state.status === OrderStatus.VALIDATED && state.stock === "reserved" ? state.reservationExpiresAtMs : undefined;
  const times = [state.deadlineMs, expiry, state.pending.refund?.dueMs, state.pending.release?.dueMs].filter((t): t is number => t !== undefined);
  return times.length === 0 ? undefined : Math.min(...times);
}
