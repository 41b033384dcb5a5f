import { applyFilter, applyOrder, paginate, parseOrder } from '../list';
import { method, type MethodSpec } from '../types';

/**
 * `voximplant.statistic.get` (scope telephony): the call history, calls registered by
 * `telephony.externalcall.register` included once finished (dev.1c-bitrix.ru
 * rest_help/scope_telephony/voximplant/statistic). `FILTER` on any field, `SORT` + `ORDER`, pages of 50.
 */
export const voximplantMethods: Record<string, MethodSpec> = {
  'voximplant.statistic.get': method(['telephony'], ({ portal, args }) => {
    const rows = portal.telephony.statistics.map((row) => {
      const call = portal.telephony.calls.find((c) => c.CALL_ID === row.CALL_ID);
      // Unlike finish's answer, the history lists the start as a date string.
      return { ...row, CALL_START_DATE: call?.CALL_START_DATE ?? '', CALL_TYPE: row.INCOMING };
    });
    const read = (row: Record<string, unknown>, field: string) => row[field];
    const filtered = applyFilter(rows as Record<string, unknown>[], args.obj('FILTER'), read);
    const sort = args.str('SORT');
    const ordered = applyOrder(filtered, sort ? parseOrder({ [sort]: args.str('ORDER') ?? 'ASC' }) : [], read);
    const page = paginate(ordered, args.get('start'));
    return { result: page.rows, total: page.total, ...(page.next === undefined ? {} : { next: page.next }) };
  }),
};
