// One name in every casing a service uses: `orders-service` → ordersService, OrdersService,
// ORDERS_SERVICE, orders_service, "Orders service". Dependency-free, so every script can share it.

/** A kebab-case name: lowercase words of letters and digits, joined by single hyphens, starting with a letter. */
export const KEBAB_NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/

export interface NameForms {
  /** `orders-service`: package names, file names, hosts, URNs, labels. */
  kebab: string
  /** `ordersService`: variables and properties. */
  camel: string
  /** `OrdersService`: classes and types. */
  pascal: string
  /** `ORDERS_SERVICE`: constants and environment-style names. */
  constant: string
  /** `orders_service`: snake_case names (SQL, prefixes). */
  snake: string
  /** `Orders service`: the name in a sentence. */
  prose: string
}

/** The text with its first letter in upper case. */
export const capitalize = (word: string): string => word.charAt(0).toUpperCase() + word.slice(1)

/** The words of a kebab-case name; throws when `name` is not one (see KEBAB_NAME). */
export function nameWords (name: string): string[] {
  if (!KEBAB_NAME.test(name)) throw new Error(`"${name}" is not a kebab-case name (lowercase letters and digits, words joined by "-")`)
  return name.split('-')
}

export function nameForms (name: string): NameForms {
  const [first = '', ...rest] = nameWords(name)
  const words = [first, ...rest]
  return {
    kebab: words.join('-'),
    camel: first + rest.map(capitalize).join(''),
    pascal: words.map(capitalize).join(''),
    constant: words.join('_').toUpperCase(),
    snake: words.join('_'),
    prose: [capitalize(first), ...rest].join(' ')
  }
}
