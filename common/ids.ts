// Catalogue ids (advertisers, ads) are PostgreSQL bigints written as decimal strings: 1 to 18 digits
// (so every value fits a bigint), no leading zero. One pattern for every layer that checks them.
export const ID_PATTERN = /^[1-9][0-9]{0,17}$/;

export const isId = (value: unknown): value is string => typeof value === 'string' && ID_PATTERN.test(value);
