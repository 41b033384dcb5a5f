import type { CrmStore } from './crm-store';
import type { User } from './types';

/** [first name, gender]; Uzbek (Latin script) and Russian (Cyrillic) staff, as on portals in Tashkent. */
const UZ_FIRST: [string, 'M' | 'F'][] = [
  ['Bekzod', 'M'], ['Dilnoza', 'F'], ['Jasur', 'M'], ['Madina', 'F'], ['Sardor', 'M'], ['Nodira', 'F'],
  ['Otabek', 'M'], ['Gulnora', 'F'], ['Sherzod', 'M'], ['Zarina', 'F'], ['Aziz', 'M'], ['Shahnoza', 'F'],
  ['Farrux', 'M'], ['Malika', 'F'], ['Javlon', 'M'], ['Sevara', 'F'], ['Ulug‘bek', 'M'], ['Kamola', 'F'],
  ['Bobur', 'M'], ['Feruza', 'F'], ['Akmal', 'M'], ['Laylo', 'F'], ['Dilshod', 'M'], ['Nigora', 'F'],
];
const UZ_LAST = [
  'Karimov', 'Rahimov', 'Yusupov', 'Abdullayev', 'Ismoilov', 'Nazarov', 'Usmonov', 'Mirzayev', 'Saidov',
  'Tursunov', 'Ergashev', 'Qodirov', 'Normatov', 'Xolmatov', 'Sultonov', 'Hasanov', 'Aliyev', 'Tojiyev',
];
const RU_FIRST: [string, 'M' | 'F'][] = [
  ['Иван', 'M'], ['Елена', 'F'], ['Дмитрий', 'M'], ['Ольга', 'F'], ['Сергей', 'M'], ['Наталья', 'F'],
  ['Алексей', 'M'], ['Анна', 'F'], ['Михаил', 'M'], ['Татьяна', 'F'],
];
const RU_LAST = ['Петров', 'Смирнов', 'Кузнецов', 'Соколов', 'Попов', 'Волков', 'Морозов', 'Лебедев', 'Новиков'];
const TRANSLIT: Record<string, string> = {
  а: 'a', б: 'b', в: 'v', г: 'g', д: 'd', е: 'e', ж: 'zh', з: 'z', и: 'i', й: 'y', к: 'k', л: 'l', м: 'm',
  н: 'n', о: 'o', п: 'p', р: 'r', с: 's', т: 't', у: 'u', ф: 'f', х: 'kh', ц: 'ts', ч: 'ch', ш: 'sh', щ: 'sch',
  ы: 'y', ь: '', ъ: '', э: 'e', ю: 'yu', я: 'ya',
};
const POSITIONS = ['Sales manager', 'Call-centre operator', 'Support specialist', 'Senior sales manager', 'Accountant'];
const MOBILE_CODES = ['90', '91', '93', '94', '95', '97', '98', '99', '33', '88'];
const COMPANIES = [
  'Toshkent Savdo MChJ', 'Samarqand Tekstil', 'Buxoro Logistika', 'Farg‘ona Agro', 'Navoiy Qurilish',
  'Andijon Avto Servis', 'ООО «Восток Трейд»', 'Chilonzor Mebel', 'Yunusobod Stomatologiya', 'Sirdaryo Energiya',
];

/** A deterministic "random" number for fixture index i (no Math.random: fixtures are reproducible). */
const mix = (i: number, salt: number): number => ((i + 1) * 2_654_435_761 + salt * 40_503) % 4_294_967_296;

/** A valid-looking Uzbek mobile number, unique per index: +998 XX NNN NN NN. */
export function uzMobile(i: number, salt = 0): string {
  const code = MOBILE_CODES[mix(i, salt) % MOBILE_CODES.length];
  return `+998${code}${String(1_000_000 + ((i * 7_919 + salt * 104_729) % 8_999_999)).padStart(7, '0')}`;
}

function person(i: number): { first: string; last: string; gender: 'M' | 'F'; latin: string } {
  const russian = i % 4 === 3;
  const [first, gender] = russian ? RU_FIRST[i % RU_FIRST.length] : UZ_FIRST[i % UZ_FIRST.length];
  const base = russian ? RU_LAST[mix(i, 1) % RU_LAST.length] : UZ_LAST[mix(i, 1) % UZ_LAST.length];
  const last = gender === 'F' ? `${base}${russian ? 'а' : 'a'}` : base;
  const latin = `${first}.${last}`
    .toLowerCase()
    .split('')
    .map((c) => TRANSLIT[c] ?? c)
    .join('')
    .replace(/[^a-z.]/g, '');
  return { first, last, gender, latin };
}

function defaultUser(id: number): User {
  const { first, last, gender, latin } = person(id - 1);
  return {
    ID: id,
    ACTIVE: true,
    ADMIN: id === 1,
    NAME: first,
    LAST_NAME: last,
    SECOND_NAME: '',
    EMAIL: `${latin}${id}@utel-demo.uz`,
    PERSONAL_GENDER: gender,
    PERSONAL_MOBILE: id % 5 === 0 ? '' : uzMobile(id, 3),
    PERSONAL_PHONE: '',
    WORK_PHONE: id % 3 === 0 ? `+99871${String(2_000_000 + id).slice(-7)}` : '',
    WORK_POSITION: id === 1 ? 'Director' : POSITIONS[id % POSITIONS.length],
    UF_PHONE_INNER: '',
    UF_DEPARTMENT: [id === 1 ? 1 : 1 + (id % 4)],
    USER_TYPE: 'employee',
    TIME_ZONE: 'Asia/Tashkent',
    IS_ONLINE: id % 3 !== 0,
    TIMEMAN_STATUS: id % 7 === 0 ? 'CLOSED' : 'OPENED',
    DATE_REGISTER: '2024-02-01T09:00:00+05:00',
  };
}

/**
 * `n` active employees, or the given partial users completed with realistic values. Users get
 * sequential IDs and unique extensions from 101 unless they bring their own.
 */
export function seedUsers(users: number | Partial<User>[]): User[] {
  const partials: Partial<User>[] = typeof users === 'number' ? Array.from({ length: users }, () => ({})) : users;
  const taken = new Set(partials.map((p) => p.UF_PHONE_INNER).filter((ext): ext is string => !!ext));
  let nextExtension = 101;
  let nextId = 1;
  return partials.map((partial) => {
    const id = partial.ID ?? nextId;
    nextId = Math.max(nextId, id) + 1;
    let extension = partial.UF_PHONE_INNER;
    if (extension === undefined) {
      while (taken.has(String(nextExtension))) nextExtension += 1;
      extension = String(nextExtension++);
    }
    return { ...defaultUser(id), ...partial, ID: id, UF_PHONE_INNER: extension };
  });
}

export interface CrmSeed {
  contacts?: number;
  companies?: number;
  leads?: number;
  deals?: number;
}

/** Customers with Uzbek mobile numbers, owned round-robin by the active employees. */
export function seedCrm(crm: CrmStore, seed: CrmSeed, users: User[]): void {
  const owners = users.filter((user) => user.ACTIVE).map((user) => user.ID);
  const owner = (i: number): number => owners[i % owners.length] ?? 1;
  for (let i = 0; i < (seed.companies ?? 0); i++) {
    crm.add('COMPANY', { TITLE: COMPANIES[i % COMPANIES.length], PHONE: [{ VALUE: uzMobile(i, 11), VALUE_TYPE: 'WORK' }], ASSIGNED_BY_ID: owner(i) }, 1);
  }
  for (let i = 0; i < (seed.contacts ?? 0); i++) {
    const p = person(i + 50);
    crm.add(
      'CONTACT',
      {
        NAME: p.first,
        LAST_NAME: p.last,
        PHONE: [{ VALUE: uzMobile(i, 7), VALUE_TYPE: 'MOBILE' }],
        EMAIL: [{ VALUE: `${p.latin}@mail.uz`, VALUE_TYPE: 'WORK' }],
        SOURCE_ID: 'CALL',
        ASSIGNED_BY_ID: owner(i),
      },
      1,
    );
  }
  for (let i = 0; i < (seed.leads ?? 0); i++) {
    const p = person(i + 200);
    crm.add(
      'LEAD',
      { TITLE: `${p.first} ${p.last}`, NAME: p.first, LAST_NAME: p.last, PHONE: [{ VALUE: uzMobile(i, 5), VALUE_TYPE: 'MOBILE' }], SOURCE_ID: 'WEB', ASSIGNED_BY_ID: owner(i + 1) },
      1,
    );
  }
  for (let i = 0; i < (seed.deals ?? 0); i++) {
    const contact = crm.contacts[i % Math.max(1, crm.contacts.length)];
    crm.add(
      'DEAL',
      {
        TITLE: `Buyurtma #${1000 + i}`,
        CATEGORY_ID: i % 2,
        CONTACT_ID: contact?.ID ?? null,
        ASSIGNED_BY_ID: contact?.ASSIGNED_BY_ID ?? owner(i),
        OPPORTUNITY: String((i + 1) * 1_500_000),
      },
      1,
    );
  }
}
