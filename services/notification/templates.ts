/** The customer emails, rendered from a template id and its parameters. Plain text, no HTML. */
import { EmailTemplate } from "../../gen/orderflow/v1/events_pb.ts";

export interface RenderedEmail {
  readonly subject: string;
  readonly text: string;
}

const short = (orderId: string) => orderId.slice(0, 8);

/** Renders one email. Unknown parameters are ignored; missing ones read as empty. */
export function render(template: EmailTemplate, orderId: string, params: Readonly<Record<string, string>>): RenderedEmail {
  const total = params["total"] ?? "";
  const reason = params["reason"] ?? "";
  const ref = short(orderId);
  switch (template) {
    case EmailTemplate.ORDER_CONFIRMED:
      return { subject: `Order ${ref} confirmed`, text: `Thank you! Your order ${orderId} is confirmed.\nTotal charged: ${total}.\n` };
    case EmailTemplate.PAYMENT_FAILED:
      return { subject: `Order ${ref}: payment failed`, text: `We could not take the payment for order ${orderId}: ${reason}.\nNothing was charged and the order is cancelled.\n` };
    case EmailTemplate.OUT_OF_STOCK:
      return { subject: `Order ${ref}: out of stock`, text: `Sorry, we could not reserve everything in order ${orderId} (${reason}).\nAny payment taken is refunded in full.\n` };
    case EmailTemplate.ORDER_CANCELLED:
      return { subject: `Order ${ref} cancelled`, text: `Your order ${orderId} is cancelled. Any payment taken is refunded in full.\n` };
    case EmailTemplate.ORDER_REFUNDED:
      return { subject: `Order ${ref} refunded`, text: `Your order ${orderId} was cancelled after completion and ${total} is refunded.\n` };
    case EmailTemplate.ORDER_FAILED:
      return { subject: `Order ${ref} could not be completed`, text: `We could not complete order ${orderId}: ${reason}.\nAny payment taken is refunded in full.\n` };
    default:
      throw new Error(`no template ${String(template)}`);
  }
}

/** The header that names the notification an email carries out; the mail sink and the checker read it. */
export const NOTIFICATION_HEADER = "X-Orderflow-Notification";
