declare module 'parse-prometheus-text-format' {
  /** Metric families as prom2json prints them: `{ name, help, type: 'COUNTER' | 'GAUGE' | …, metrics: [{ value, labels? }] }`. */
  export default function parsePrometheusTextFormat(text: string): unknown[];
}
