// Forms generated from a JSON schema (a generator kind's Config or its sample options).
// Only the fields the user changed are returned, so the server's defaults stay the source of truth.

import { h } from './dom.js';

/** Resolve `$ref` / single-entry `allOf` against the root schema's `$defs`. */
function resolve(prop, root) {
  let current = prop || {};
  for (let i = 0; i < 10; i++) {
    if (current.$ref) {
      const name = current.$ref.split('/').pop();
      const target = (root.$defs || root.definitions || {})[name] || {};
      const { $ref, ...rest } = current;
      current = { ...target, ...rest };
    } else if (Array.isArray(current.allOf) && current.allOf.length === 1) {
      const { allOf, ...rest } = current;
      current = { ...resolve(allOf[0], root), ...rest };
    } else break;
  }
  return current;
}

/**
 * Describe a property as one input: {control: 'number'|'integer'|'boolean'|'enum'|'string'|'json',
 * nullable, enum, minimum, maximum, exclusiveMinimum, exclusiveMaximum}.
 */
export function describeProperty(prop, root = {}) {
  prop = resolve(prop, root);
  let nullable = false;
  let base = prop;
  const variants = prop.anyOf || prop.oneOf;
  if (Array.isArray(variants)) {
    const nonNull = variants.map((v) => resolve(v, root)).filter((v) => v.type !== 'null');
    nullable = nonNull.length < variants.length;
    if (nonNull.length === 1) base = { ...nonNull[0] };
    else if (nonNull.length > 1 && nonNull.every((v) => v.const !== undefined || v.enum)) {
      base = { enum: nonNull.flatMap((v) => (v.enum ? v.enum : [v.const])) };
    } else base = { type: 'json' };
  }
  let type = base.type;
  if (Array.isArray(type)) {
    nullable = nullable || type.includes('null');
    const rest = type.filter((t) => t !== 'null');
    type = rest.length === 1 ? rest[0] : 'json';
  }
  const info = {
    nullable,
    minimum: base.minimum,
    maximum: base.maximum,
    exclusiveMinimum: base.exclusiveMinimum,
    exclusiveMaximum: base.exclusiveMaximum,
  };
  if (base.const !== undefined && !base.enum) base = { ...base, enum: [base.const] };
  if (Array.isArray(base.enum)) return { ...info, control: 'enum', enum: base.enum };
  if (type === 'integer') return { ...info, control: 'integer' };
  if (type === 'number') return { ...info, control: 'number' };
  // A nullable boolean has three states (default / yes / no): a checkbox would always send one.
  if (type === 'boolean' && nullable) return { ...info, control: 'enum', enum: [true, false] };
  if (type === 'boolean') return { ...info, control: 'boolean' };
  if (type === 'string') return { ...info, control: 'string' };
  return { ...info, control: 'json' };
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

// Field keys whose plain spelling would be jargon ("Gc early fraction").
const PLAIN_LABELS = {
  generative_classifier: 'Quality filter',
  gc_sigma: 'Quality filter: sensitivity',
  gc_steps: 'Quality filter: training steps',
  gc_early_fraction: 'Quality filter: when to take its early snapshot',
  ema_decay: 'Weight averaging (EMA)',
  beta: 'Beta (smoothness of the latent space)',
  beta_normalise: 'Scale beta by image size',
  latent_dim: 'Latent size',
  ngf: 'Generator width',
  ndf: 'Discriminator width',
};

/** A readable name from a field key ("guidance_scale" -> "Guidance scale"). */
function labelFor(name, prop) {
  const text = PLAIN_LABELS[name] || name.replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1) + (prop && prop.title && prop.title.toLowerCase() !== text.toLowerCase() ? ` (${prop.title})` : '');
}

function rangeText(info) {
  const parts = [];
  if (info.minimum !== undefined) parts.push(`≥ ${info.minimum}`);
  if (info.exclusiveMinimum !== undefined) parts.push(`> ${info.exclusiveMinimum}`);
  if (info.maximum !== undefined) parts.push(`≤ ${info.maximum}`);
  if (info.exclusiveMaximum !== undefined) parts.push(`< ${info.exclusiveMaximum}`);
  return parts.join(', ');
}

/**
 * Normalise the shapes a kind may use for its options into a JSON schema:
 * a schema with `properties`, a map name -> property schema, or a list of names / {name, ...}.
 */
export function asSchema(spec) {
  if (!spec) return { properties: {} };
  if (spec.properties) return spec;
  if (Array.isArray(spec)) {
    const properties = {};
    for (const item of spec) {
      if (typeof item === 'string') properties[item] = {};
      else if (item && item.name) properties[item.name] = item;
    }
    return { properties };
  }
  if (typeof spec === 'object') {
    const properties = {};
    for (const [name, value] of Object.entries(spec)) {
      properties[name] = value && typeof value === 'object' && !Array.isArray(value) ? value : { default: value };
    }
    return { properties };
  }
  return { properties: {} };
}

/**
 * Build a form fragment for `schema` (with `defaults` overriding the schema's defaults).
 * Returns {element, values(): {changed fields} (throws Error listing invalid fields), reset(),
 * isEmpty, fieldNames}.
 */
export function schemaForm(schema, defaults = {}, { idPrefix = 'cfg', exclude = [] } = {}) {
  schema = asSchema(schema);
  const root = schema;
  const properties = schema.properties || {};
  const rows = [];
  const fields = [];
  for (const [name, rawProp] of Object.entries(properties)) {
    if (exclude.includes(name)) continue;
    const prop = resolve(rawProp, root);
    const info = describeProperty(rawProp, root);
    if (!prop.type && !prop.anyOf && !prop.enum && info.control === 'json' && prop.default !== undefined) {
      // A bare {default: v}: infer the control from the default's type.
      const v = prop.default;
      if (typeof v === 'boolean') info.control = 'boolean';
      else if (Number.isInteger(v)) info.control = 'integer';
      else if (typeof v === 'number') info.control = 'number';
      else if (typeof v === 'string') info.control = 'string';
    }
    const fallback = Object.prototype.hasOwnProperty.call(defaults || {}, name) ? defaults[name] : prop.default;
    const id = `${idPrefix}-${name}`;
    const errorId = `${id}-error`;
    let control;
    if (info.control === 'boolean') {
      control = h('input', { type: 'checkbox', id, name, 'data-testid': id, checked: Boolean(fallback) });
    } else if (info.control === 'enum') {
      control = h('select', { id, name, 'data-testid': id },
        info.nullable ? h('option', { value: '__null__' }, '(default / none)') : null,
        info.enum.map((v) => h('option', { value: JSON.stringify(v) }, v === true ? 'yes' : v === false ? 'no' : String(v))));
      control.value = fallback === null || fallback === undefined ? (info.nullable ? '__null__' : JSON.stringify(info.enum[0])) : JSON.stringify(fallback);
    } else if (info.control === 'integer' || info.control === 'number') {
      control = h('input', {
        type: 'number', id, name, 'data-testid': id, inputmode: info.control === 'integer' ? 'numeric' : 'decimal',
        step: info.control === 'integer' ? '1' : 'any',
        min: info.minimum ?? info.exclusiveMinimum, max: info.maximum ?? info.exclusiveMaximum,
        placeholder: info.nullable ? 'empty = none' : null,
        value: fallback === null || fallback === undefined ? '' : String(fallback),
      });
    } else if (info.control === 'string') {
      control = h('input', {
        type: 'text', id, name, 'data-testid': id, spellcheck: 'false',
        value: fallback === null || fallback === undefined ? '' : String(fallback),
        placeholder: info.nullable ? 'empty = none' : null,
      });
    } else {
      control = h('textarea', {
        id, name, 'data-testid': id, rows: 1, spellcheck: 'false', class: 'json-input',
        value: fallback === undefined ? '' : JSON.stringify(fallback),
      });
    }
    const helpParts = [prop.description || rawProp.description || ''];
    const range = rangeText(info);
    if (range) helpParts.push(`(${range})`);
    if (info.control === 'json') helpParts.push('— JSON, e.g. [4, 8]');
    helpParts.push(`Default: ${fallback === undefined || fallback === null ? 'none' : JSON.stringify(fallback)}.`);
    const labelText = labelFor(name, null);
    const help = helpParts.filter(Boolean).join(' ');
    const describedBy = [`${id}-help`, errorId].join(' ');
    control.setAttribute('aria-describedby', describedBy);
    const label = h('label', { for: id }, labelText);
    const helpEl = h('p', { class: 'help', id: `${id}-help` }, help);
    const errEl = h('p', { class: 'field-error', id: errorId, 'data-testid': errorId, hidden: true });
    const row = info.control === 'boolean'
      ? h('div', { class: 'field field-check', dataset: { field: name } }, control, label, helpEl, errEl)
      : h('div', { class: 'field', dataset: { field: name } }, label, control, helpEl, errEl);
    rows.push(row);
    const markChanged = () => {
      let changed = false;
      try {
        const value = read();
        changed = value !== undefined && !same(value, fallback);
      } catch {
        changed = true;
      }
      row.classList.toggle('changed', changed);
    };
    control.addEventListener('input', markChanged);
    control.addEventListener('change', markChanged);

    // The value as the server expects it; throws Error(message) when it is invalid.
    function read() {
      if (info.control === 'boolean') return control.checked;
      if (info.control === 'enum') return control.value === '__null__' ? null : JSON.parse(control.value);
      const raw = control.value.trim();
      // An empty field without a known default is simply not sent.
      if (raw === '' && fallback === undefined) return undefined;
      if (info.control === 'integer' || info.control === 'number') {
        if (raw === '') {
          if (info.nullable) return null;
          if (control.validity && control.validity.badInput) throw new Error('not a number');
          throw new Error('a number is required');
        }
        const num = Number(raw);
        if (!isFinite(num)) throw new Error('not a number');
        if (info.control === 'integer' && !Number.isInteger(num)) throw new Error('must be a whole number');
        if (info.minimum !== undefined && num < info.minimum) throw new Error(`must be ≥ ${info.minimum}`);
        if (info.maximum !== undefined && num > info.maximum) throw new Error(`must be ≤ ${info.maximum}`);
        if (info.exclusiveMinimum !== undefined && num <= info.exclusiveMinimum) throw new Error(`must be > ${info.exclusiveMinimum}`);
        if (info.exclusiveMaximum !== undefined && num >= info.exclusiveMaximum) throw new Error(`must be < ${info.exclusiveMaximum}`);
        return num;
      }
      if (info.control === 'string') return raw === '' && info.nullable ? null : control.value;
      if (raw === '') return fallback;
      try {
        return JSON.parse(raw);
      } catch {
        throw new Error('not valid JSON (e.g. [4, 8] or {"a": 1})');
      }
    }
    fields.push({
      name, control, row, errEl,
      read,
      reset() {
        if (info.control === 'boolean') control.checked = Boolean(fallback);
        else if (info.control === 'enum') control.value = fallback === null || fallback === undefined ? (info.nullable ? '__null__' : JSON.stringify(info.enum[0])) : JSON.stringify(fallback);
        else if (info.control === 'json') control.value = fallback === undefined ? '' : JSON.stringify(fallback);
        else control.value = fallback === null || fallback === undefined ? '' : String(fallback);
        markChanged();
        setFieldError(this, '');
      },
      fallback,
    });
  }

  function setFieldError(f, message) {
    f.errEl.textContent = message ? `${labelFor(f.name)}: ${message}` : '';
    f.errEl.hidden = !message;
    if (message) f.control.setAttribute('aria-invalid', 'true');
    else f.control.removeAttribute('aria-invalid');
  }

  const element = h('div', { class: 'schema-form' },
    rows.length ? rows : h('p', { class: 'muted' }, 'This kind has no settings to change.'));
  return {
    element,
    isEmpty: rows.length === 0,
    fieldNames: fields.map((f) => f.name),
    /** The fields whose value differs from the default; throws Error when any field is invalid. */
    values() {
      const changed = {};
      const problems = [];
      let firstBad = null;
      for (const f of fields) {
        try {
          const value = f.read();
          setFieldError(f, '');
          if (value !== undefined && !same(value, f.fallback)) changed[f.name] = value;
        } catch (error) {
          setFieldError(f, error.message);
          problems.push(`${f.name}: ${error.message}`);
          firstBad = firstBad || f;
        }
      }
      if (problems.length) {
        const error = new Error(`Please fix: ${problems.join('; ')}`);
        error.focus = firstBad.control;
        throw error;
      }
      return changed;
    },
    /** Mark a field invalid from a server message such as "steps: must be >= 1". Returns whether one matched. */
    showServerError(detail) {
      const match = /^(?:config\.|options\.)?([A-Za-z_][A-Za-z0-9_]*)\s*:/.exec(detail || '');
      const f = match && fields.find((x) => x.name === match[1]);
      if (f) setFieldError(f, detail.slice(match[0].length).trim());
      return Boolean(f);
    },
    reset() {
      fields.forEach((f) => f.reset());
    },
  };
}
