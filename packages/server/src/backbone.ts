/** The backbone contract lives in @gatehouse/backbone-kit; the core re-exports it for its own modules. */
export * from '@gatehouse/backbone-kit';
