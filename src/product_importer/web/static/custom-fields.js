// Custom fields, shared by the Fields, Products and Import pages: the defined fields, their
// types in words, a stored value shown as text, and a form input fit for each type.
"use strict";

PI.fields = (() => {
  const TYPES = {
    text: "Text",
    integer: "Whole number",
    decimal: "Decimal number",
    boolean: "Yes / no",
    date: "Date",
    url: "Web address",
    list: "List of words",
    choice: "Choice",
  };
  const NUMERIC = new Set(["integer", "decimal", "date"]);
  const TEXT_LIKE = new Set(["text", "url"]);
  let cached = null;

  // The defined fields, ordered by id; read once per page unless told to read again.
  function list(fresh = false) {
    if (fresh || cached === null) {
      cached = PI.api("/api/fields").catch((error) => {
        cached = null;
        throw error;
      });
    }
    return cached;
  }

  // A stored value as a person reads it; "" when the field is not set.
  function format(field, value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (Array.isArray(value)) return value.join(", ");
    return String(value);
  }

  // Filter operators that fit a type: [query suffix, words]. "" is plain equality.
  function operators(type) {
    const ops = [];
    if (type === "list") ops.push(["", "contains the item"]);
    else ops.push(["", "is"]);
    if (TEXT_LIKE.has(type)) ops.push(["contains", "contains"]);
    if (NUMERIC.has(type)) {
      const [after, before] = type === "date" ? ["after", "before"] : ["more than", "less than"];
      ops.push(["gt", `is ${after}`], ["gte", `is ${after} or equal`], ["lt", `is ${before}`], ["lte", `is ${before} or equal`]);
    }
    ops.push(["set=true", "is set"], ["set=false", "is not set"]);
    return ops;
  }

  function option(value, text, selected = false) {
    const node = document.createElement("option");
    node.value = value;
    node.textContent = text;
    node.selected = selected;
    return node;
  }

  // An input for one value of the field: a select for yes/no and choices, a typed input for
  // the rest. `value` is the stored value (or undefined); an empty input means "not set".
  function input(field, id, value) {
    let node;
    if (field.type === "boolean" || field.type === "choice") {
      node = document.createElement("select");
      node.append(option("", "(not set)"));
      if (field.type === "boolean") {
        node.append(option("true", "Yes", value === true), option("false", "No", value === false));
      } else {
        const choices = [...(field.choices || [])];
        // A value set before the choices changed stays visible (and kept unless changed).
        if (typeof value === "string" && !choices.includes(value)) choices.push(value);
        for (const choice of choices) node.append(option(choice, choice, choice === value));
      }
    } else {
      node = document.createElement("input");
      node.autocomplete = "off";
      node.type = { integer: "number", decimal: "number", date: "date", url: "url" }[field.type] || "text";
      if (field.type === "integer") {
        node.step = "1";
        node.inputMode = "numeric";
      } else if (field.type === "decimal") {
        node.step = "any";
        node.inputMode = "decimal";
      } else if (field.type === "url") {
        node.maxLength = 2048;
        node.placeholder = "https://";
      } else if (field.type === "list") {
        node.maxLength = 2000;
        node.placeholder = "Separated by commas";
      } else if (field.type === "text") {
        node.maxLength = 2000;
      }
      node.value = format(field, value);
    }
    node.id = id;
    node.name = `field.${field.key}`;
    node.dataset.key = field.key;
    return node;
  }

  // What an input holds, as the API takes it: {value} (null = not set), or {error} in words.
  function read(field, node) {
    const raw = node.value.trim();
    if (node.validity && node.validity.badInput) {
      return { error: field.type === "date" ? "Enter a whole date, or clear it." : "Enter a number, or clear it." };
    }
    if (raw === "") return { value: null };
    switch (field.type) {
      case "integer":
        if (!/^[+-]?\d+$/.test(raw)) return { error: "Enter a whole number, such as 4." };
        // Beyond 2^53 a JavaScript number loses digits: send it as a BigInt (see json()).
        return { value: Number.isSafeInteger(Number(raw)) ? Number(raw) : BigInt(raw) };
      case "decimal":
        // Sent as a string, so no digit is lost on the way.
        return { value: raw };
      case "boolean":
        return { value: raw === "true" };
      case "list":
        return { value: raw.split(",").map((item) => item.trim()).filter((item) => item) };
      case "url":
        if (!/^https?:\/\/\S+$/i.test(raw)) return { error: "Enter an address starting with http:// or https://." };
        return { value: raw };
      default:
        return { value: raw };
    }
  }

  // Whether two values (stored, or read from an input) are the same.
  function same(a, b) {
    const norm = (value) => (value === undefined ? null : typeof value === "bigint" ? String(value) : value);
    return JSON.stringify(norm(a), (_key, v) => (typeof v === "bigint" ? String(v) : v)) === JSON.stringify(norm(b), (_key, v) => (typeof v === "bigint" ? String(v) : v));
  }

  // JSON text of a body that may hold BigInt whole numbers, written as plain JSON numbers.
  function json(body) {
    const marker = "\u0000bigint:";
    return JSON.stringify(body, (_key, value) => (typeof value === "bigint" ? marker + value : value)).replace(
      /"\\u0000bigint:(-?\d+)"/g,
      "$1",
    );
  }

  // Which custom fields a server's 422 names, each with its reason: [{key, message}] (key null
  // when an item names none of `fields`). The API says "field 'price' is not a number; field
  // 'stock' must be a whole number"; a validation error names it in `loc` (body, fields, key).
  function named(fields, error) {
    const keys = new Set(fields.map((field) => field.key));
    const detail = error && error.body && error.body.detail;
    const found = [];
    if (Array.isArray(detail)) {
      for (const item of detail) {
        const loc = (item.loc || []).map(String);
        const at = loc.indexOf("fields");
        const key = at >= 0 && keys.has(loc[at + 1]) ? loc[at + 1] : null;
        found.push({ key, message: String(item.msg || "").replace(/^Value error, /, "") });
      }
      return found;
    }
    const text = typeof detail === "string" ? detail : error.message;
    for (const part of text.split(/;\s+(?=fields?\b)/)) {
      const match = /^fields?\s*(?:\.|['"‘“])?([a-z][a-z0-9_]*)['"’”]?\s*(?::\s*)?(.*)$/s.exec(part.trim());
      if (match && keys.has(match[1])) {
        const reason = match[2].trim();
        found.push({ key: match[1], message: reason ? reason[0].toUpperCase() + reason.slice(1) : part });
      } else {
        found.push({ key: null, message: part });
      }
    }
    return found;
  }

  return { TYPES, list, format, operators, input, read, same, json, named };
})();
