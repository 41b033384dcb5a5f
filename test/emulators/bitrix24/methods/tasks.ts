import { scalarText, toInt } from '../args';
import { applyFilter, paginate } from '../list';
import { atom } from '../clock';
import { RestError, coreError } from '../errors';
import { method, type MethodSpec } from '../types';

export const taskMethods: Record<string, MethodSpec> = {
  /** Scope `task`. Result `{task: {id: "…", …}}` in camelCase; errors carry a trailing `<br>`. */
  'tasks.task.add': method(['task'], ({ portal, args, user }) => {
    const raw = args.obj('fields');
    if (!raw || Object.keys(raw).length === 0) {
      throw new RestError(400, '100', 'Could not find value for parameter {fields}');
    }
    const fields = Object.fromEntries(Object.entries(raw).map(([key, value]) => [key.toUpperCase(), value]));
    const title = typeof fields.TITLE === 'string' ? fields.TITLE.trim() : '';
    if (title === '') throw coreError('Task title not specified<br>');
    const responsibleId = toInt(fields.RESPONSIBLE_ID);
    if (responsibleId === undefined) throw coreError('Assignee not specified<br>');
    const responsible = portal.users.find((u) => u.ID === responsibleId && u.ACTIVE);
    if (!responsible) throw coreError('User specified in the "Assignee" field not found<br>');
    const createdBy = toInt(fields.CREATED_BY) ?? user.ID;
    const id = portal.tasks.length + 1;
    const now = portal.clock.now();
    portal.tasks.push({ id, fields, createdBy, createdAt: new Date(now) });
    const person = (uid: number) => {
      const u = portal.users.find((candidate) => candidate.ID === uid);
      return { id: String(uid), name: u ? `${u.NAME} ${u.LAST_NAME}` : '', link: `/company/personal/user/${uid}/`, icon: '', workPosition: u?.WORK_POSITION ?? '' };
    };
    return {
      result: {
        task: {
          id: String(id),
          parentId: null,
          title,
          description: typeof fields.DESCRIPTION === 'string' ? fields.DESCRIPTION : '',
          priority: scalarText(fields.PRIORITY) ?? '1',
          status: '2',
          groupId: scalarText(fields.GROUP_ID) ?? '0',
          createdBy: String(createdBy),
          createdDate: atom(now),
          responsibleId: String(responsibleId),
          changedBy: String(createdBy),
          changedDate: atom(now),
          deadline: typeof fields.DEADLINE === 'string' ? fields.DEADLINE : null,
          ufCrmTask: Array.isArray(fields.UF_CRM_TASK) ? fields.UF_CRM_TASK.map(String) : [],
          auditors: [],
          accomplices: [],
          creator: person(createdBy),
          responsible: person(responsibleId),
        },
      },
    };
  }),

  /**
   * Scope `task`. `filter` with the usual prefixes (`%TITLE` is LIKE), `select`; result
   * `{tasks: [{id, title, …}]}` in camelCase, pages of 50 (apidocs tasks-task-list).
   */
  'tasks.task.list': method(['task'], ({ portal, args }) => {
    const rows = portal.tasks.map((task) => ({
      id: String(task.id),
      title: typeof task.fields.TITLE === 'string' ? task.fields.TITLE : '',
      description: typeof task.fields.DESCRIPTION === 'string' ? task.fields.DESCRIPTION : '',
      responsibleId: scalarText(task.fields.RESPONSIBLE_ID) ?? '',
      createdBy: String(task.createdBy),
      ufCrmTask: Array.isArray(task.fields.UF_CRM_TASK) ? task.fields.UF_CRM_TASK.map(String) : [],
    }));
    const byField: Record<string, keyof (typeof rows)[number]> = { ID: 'id', TITLE: 'title', DESCRIPTION: 'description', RESPONSIBLE_ID: 'responsibleId', CREATED_BY: 'createdBy' };
    const filtered = applyFilter(rows, args.obj('filter'), (row, field) => (byField[field] ? row[byField[field]] : undefined));
    const page = paginate(filtered, args.get('start'));
    return { result: { tasks: page.rows }, total: page.total, ...(page.next === undefined ? {} : { next: page.next }) };
  }),
};
