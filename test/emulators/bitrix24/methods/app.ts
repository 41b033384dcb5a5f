import { method, type MethodSpec } from '../types';

/** Application-context methods of scope `basic`. */
export const appMethods: Record<string, MethodSpec> = {
  'app.info': method(null, ({ portal }) => {
    // Enterprise portals report e.g. LICENSE "ru_ent250", which selects the 5/250 rate bucket.
    const licenseType = portal.licenseFamily === 'ent' ? 'ent250' : portal.licenseFamily;
    return {
      result: {
        ID: 3,
        CODE: portal.host.clientId,
        VERSION: 1,
        STATUS: 'L',
        INSTALLED: true,
        PAYMENT_EXPIRED: 'N',
        DAYS: null,
        LANGUAGE_ID: 'ru',
        LICENSE: `ru_${licenseType}`,
        LICENSE_TYPE: licenseType,
        LICENSE_FAMILY: portal.licenseFamily,
      },
    };
  }),

  scope: method(null, ({ portal, args }) => ({
    result: args.flag('full', false) ? ['basic', 'crm', 'telephony', 'call', 'user', 'user_basic', 'user_brief', 'placement', 'task'] : [...portal.scopes],
  })),

  profile: method(null, ({ user }) => ({
    result: {
      ID: String(user.ID),
      ADMIN: user.ADMIN,
      NAME: user.NAME,
      LAST_NAME: user.LAST_NAME,
      PERSONAL_GENDER: user.PERSONAL_GENDER,
      TIME_ZONE: user.TIME_ZONE,
    },
  })),
};
