import type { BenchSection } from './report.js';
export async function manyBans(): Promise<BenchSection> { return { title: 'todo', rows: [], json: {} }; }
