// Form helpers shared by the newer pages: the API's 400s put next to the
// input their field names, other errors next to the button that tried.
import { h } from './dom.js';

export function clearErrors(form) {
  for (const el of form.querySelectorAll('.field-error')) el.remove();
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
}

// fieldInput(field) answers the input a field path concerns, or null.
export function showError(form, e, fieldInput, fallback) {
  const input = e.field && fieldInput ? fieldInput(e.field) : null;
  const id = `err-${Math.random().toString(36).slice(2)}`;
  const msg = h('p', { class: 'field-error', role: 'alert', id }, e.message);
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', id);
    input.closest('.field').append(msg);
    input.focus();
  } else {
    fallback.after(msg);
  }
}

export const field = (id, label, input) =>
  h('div', { class: 'field' }, h('label', { for: id }, label), input);
