export { ChronicleChatStore, type ChronicleChatStoreOptions } from "./chat-store.ts"
