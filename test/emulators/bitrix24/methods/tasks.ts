import { scalarText, toInt } from '../args';
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
};
