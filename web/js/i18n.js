// Labels in Chinese (the default) and English. Elements carry their label key in data-i18n (and
// data-i18n-placeholder / -title / -aria-label for attributes), so switching the language relabels the
// page in place: nothing is re-rendered, nothing playing is interrupted.
import { zh } from './i18n-zh.js';
import { en } from './i18n-en.js';

const dictionaries = { zh, en };
const STORAGE_KEY = 'sharp-eyes.console.lang';
const ATTRIBUTES = ['placeholder', 'title', 'aria-label'];

let lang = localStorage.getItem(STORAGE_KEY) === 'en' ? 'en' : 'zh';

export const currentLang = () => lang;

/** The label for `key`, with {name} placeholders filled from `args`. */
export function t(key, args) {
  const text = dictionaries[lang][key] ?? dictionaries.zh[key] ?? key;
  if (!args) return text;
  return text.replace(/\{(\w+)\}/g, (match, name) => (name in args ? String(args[name]) : match));
}

export const hasLabel = (key) => key in dictionaries.zh;

/** Marks `el` as labelled by `key`, so a language switch relabels it. */
export function label(el, key, args) {
  el.dataset.i18n = key;
  if (args) el.dataset.i18nArgs = JSON.stringify(args);
  else delete el.dataset.i18nArgs;
  el.textContent = t(key, args);
  return el;
}

export function applyI18n(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) {
    el.textContent = t(el.dataset.i18n, el.dataset.i18nArgs ? JSON.parse(el.dataset.i18nArgs) : undefined);
  }
  for (const attribute of ATTRIBUTES) {
    for (const el of root.querySelectorAll(`[data-i18n-${attribute}]`)) {
      el.setAttribute(attribute, t(el.getAttribute(`data-i18n-${attribute}`)));
    }
  }
  document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
}

const listeners = new Set();
export const onLanguageChange = (listener) => listeners.add(listener);

export function setLang(next) {
  lang = next === 'en' ? 'en' : 'zh';
  localStorage.setItem(STORAGE_KEY, lang);
  applyI18n();
  for (const listener of listeners) listener(lang);
}

/** Date and time in the viewer's zone, in the console's language. */
export function formatTime(iso) {
  if (!iso) return '';
  return new Date(iso).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-GB', { hour12: false });
}
