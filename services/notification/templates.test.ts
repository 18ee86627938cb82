import { describe, expect, it } from "vitest";
import { EmailTemplate } from "../../gen/orderflow/v1/events_pb.ts";
import { render } from "./templates.ts";

const orderId = "0b7e4a1c-1111-4222-8333-444455556666";

describe("email templates", () => {
  it.each([
    [EmailTemplate.ORDER_CONFIRMED, /confirmed/, /Total charged: 10.00 USD/],
    [EmailTemplate.PAYMENT_FAILED, /payment failed/, /card declined/],
    [EmailTemplate.OUT_OF_STOCK, /out of stock/, /card declined/],
    [EmailTemplate.ORDER_CANCELLED, /cancelled/, /refunded in full/],
    [EmailTemplate.ORDER_REFUNDED, /refunded/, /10.00 USD is refunded/],
    [EmailTemplate.ORDER_FAILED, /could not be completed/, /card declined/],
  ])("renders template %s", (template, subject, text) => {
    const email = render(template, orderId, { total: "10.00 USD", reason: "card declined" });
    expect(email.subject).toMatch(subject);
    expect(email.subject).toContain("0b7e4a1c");
    expect(email.text).toMatch(text);
    expect(email.text).toContain(orderId);
  });

  it("refuses a template it does not know", () => {
    expect(() => render(EmailTemplate.UNSPECIFIED, orderId, {})).toThrow(/no template/);
  });
});
