/**
 * Prints `buf/validate/validate.proto` into `.proto-deps/` from the descriptor that ships inside the
 * installed `@bufbuild/protovalidate`, so that `buf` can compile our `buf.validate` rules offline
 * (the Buf Schema Registry is not reachable here). The printed file declares the same messages, field
 * numbers and extensions as the library's own descriptor, but without the CEL rule options: it is
 * only an import for the compiler. At run time protovalidate uses its own full descriptor.
 *
 * Usage: tsx infra/buf/validate-proto.ts
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { isFieldSet } from "@bufbuild/protobuf";
import {
  FieldDescriptorProtoSchema,
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as Type,
  type DescriptorProto,
  type EnumDescriptorProto,
  type FieldDescriptorProto,
} from "@bufbuild/protobuf/wkt";
import { file_buf_validate_validate } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";

const scalarNames: Partial<Record<Type, string>> = {
  [Type.DOUBLE]: "double",
  [Type.FLOAT]: "float",
  [Type.INT64]: "int64",
  [Type.UINT64]: "uint64",
  [Type.INT32]: "int32",
  [Type.FIXED64]: "fixed64",
  [Type.FIXED32]: "fixed32",
  [Type.BOOL]: "bool",
  [Type.STRING]: "string",
  [Type.BYTES]: "bytes",
  [Type.UINT32]: "uint32",
  [Type.SFIXED32]: "sfixed32",
  [Type.SFIXED64]: "sfixed64",
  [Type.SINT32]: "sint32",
  [Type.SINT64]: "sint64",
};

const MAX_FIELD_NUMBER = 536870911;

/** The oneof a field belongs to, or undefined (proto2 descriptors track presence explicitly). */
function oneofOf(field: FieldDescriptorProto): number | undefined {
  return isFieldSet(field, FieldDescriptorProtoSchema.field.oneofIndex) ? field.oneofIndex : undefined;
}

function typeName(field: FieldDescriptorProto): string {
  const scalar = scalarNames[field.type];
  return scalar ?? field.typeName;
}

function printField(field: FieldDescriptorProto, inOneof: boolean): string {
  const label = inOneof ? "" : field.label === Label.REPEATED ? "repeated " : "optional ";
  return `${label}${typeName(field)} ${field.name} = ${field.number};`;
}

function printRange(start: number, endExclusive: number): string {
  const end = endExclusive - 1;
  if (end >= MAX_FIELD_NUMBER) return `${start} to max`;
  return start === end ? `${start}` : `${start} to ${end}`;
}

function printMessage(message: DescriptorProto): string[] {
  const lines = [`message ${message.name} {`];
  for (const range of message.reservedRange) lines.push(`  reserved ${printRange(range.start, range.end)};`);
  if (message.reservedName.length > 0) {
    lines.push(`  reserved ${message.reservedName.map((name) => JSON.stringify(name)).join(", ")};`);
  }
  for (const range of message.extensionRange) lines.push(`  extensions ${printRange(range.start, range.end)};`);
  for (const field of message.field.filter((f) => oneofOf(f) === undefined)) {
    lines.push(`  ${printField(field, false)}`);
  }
  message.oneofDecl.forEach((oneof, index) => {
    lines.push(`  oneof ${oneof.name} {`);
    for (const field of message.field.filter((f) => oneofOf(f) === index)) {
      lines.push(`    ${printField(field, true)}`);
    }
    lines.push("  }");
  });
  lines.push("}");
  return lines;
}

function printEnum(enumType: EnumDescriptorProto): string[] {
  const lines = [`enum ${enumType.name} {`];
  for (const range of enumType.reservedRange) {
    lines.push(`  reserved ${range.start === range.end ? range.start : `${range.start} to ${range.end}`};`);
  }
  if (enumType.reservedName.length > 0) {
    lines.push(`  reserved ${enumType.reservedName.map((name) => JSON.stringify(name)).join(", ")};`);
  }
  for (const value of enumType.value) lines.push(`  ${value.name} = ${value.number};`);
  lines.push("}");
  return lines;
}

/** Renders the compile-time proto source of buf.validate from the library's descriptor. */
export function renderValidateProto(): string {
  const file = file_buf_validate_validate.proto;
  const lines = [
    "// Printed by infra/buf/validate-proto.ts from @bufbuild/protovalidate. Do not edit; not committed.",
    'syntax = "proto2";',
    `package ${file.package};`,
    ...file.dependency.map((dep) => `import "${dep}";`),
  ];
  for (const message of file.messageType) lines.push(...printMessage(message));
  for (const enumType of file.enumType) lines.push(...printEnum(enumType));
  for (const ext of file.extension) {
    lines.push(`extend ${ext.extendee} {`, `  ${printField(ext, false)}`, "}");
  }
  return `${lines.join("\n")}\n`;
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];
if (isMain) {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
  const target = join(root, ".proto-deps", file_buf_validate_validate.proto.name);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, renderValidateProto());
}
