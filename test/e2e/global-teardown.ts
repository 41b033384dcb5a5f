import { withAdminClient } from './support/database';

export default async function globalTeardown(): Promise<void> {
  const template = process.env.TEST_DATABASE_TEMPLATE;
  if (template) {
    await withAdminClient(async (c) => {
      // Specs drop their own databases; this catches those of a spec that crashed.
      // Only this run's (named after its template): other runs may share the server.
      const prefix = template.replace('template_', '');
      const { rows } = await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, [`${prefix}_`]);
      for (const { datname } of rows) if (new RegExp(`^${prefix}_[0-9a-f]{12}$`).test(datname)) await c.query(`DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
      await c.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`);
    });
  }
  await globalThis.__EMBEDDED_PG__?.stop();
}
