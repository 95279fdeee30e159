// The terms of use and the privacy notice (LGPD, Lei 13.709/2018), in
// Brazilian Portuguese and English: what a fan accepts when opening an
// account. The version is the one the server records with the consent
// (`TERMS_VERSION` in server/src/http/account_api.rs); change both together.
export const TERMS_VERSION = "2026-12-01";

export const legal = {
  pt: {
    terms: {
      title: "Termos de uso",
      sections: [
        ["A conta", "Cada conta é de uma pessoa, identificada pelo e-mail. Você guarda sua senha e seu segundo fator (aplicativo autenticador e códigos de recuperação); compras feitas com eles são suas."],
        ["A fila e os limites", "A ordem da fila é a da chegada, sorteada entre quem chega no mesmo intervalo e na pré-fila. Cada evento tem um limite de ingressos por pessoa. Contas múltiplas, robôs ou revenda para burlar a fila ou os limites levam ao cancelamento das compras envolvidas."],
        ["Reservas e pagamento", "Os ingressos escolhidos ficam reservados por alguns minutos; sem pagamento no prazo, voltam à venda. Um pagamento confirmado emite os ingressos, que ficam em “Meus ingressos”."],
        ["Ingressos", "Cada ingresso tem um código único; a entrada aceita cada código uma vez. Não compartilhe o QR code."],
      ],
    },
    privacy: {
      title: "Aviso de privacidade",
      sections: [
        ["Quem trata os dados", "O IngressoJá é o controlador dos dados pessoais tratados nesta plataforma. Encarregado (DPO): privacidade@ingressoja.example."],
        ["Que dados", "E-mail; senha guardada só como hash (argon2id), nunca em claro; segredo do segundo fator e códigos de recuperação (só como hash); compras e ingressos; endereço IP e horário de cada ação na conta e na compra; um cookie de sessão, essencial para o login. Número de cartão não é guardado."],
        ["Para quê, e com que base", "Vender e entregar os ingressos (execução de contrato, art. 7º, V); proteger contas e a fila contra fraude e robôs (legítimo interesse e prevenção à fraude, art. 7º, IX, e art. 11, II, “g”); cumprir obrigações legais e fiscais (art. 7º, II)."],
        ["Com quem", "Com o processador de pagamentos, só o necessário para cobrar. Não vendemos dados."],
        ["Por quanto tempo", "Enquanto a conta existir e, depois, pelo prazo que a lei exigir para registros de compra e de acesso (Marco Civil da Internet, art. 15: seis meses para registros de acesso)."],
        ["Seus direitos", "Confirmação e acesso, correção, anonimização, bloqueio ou eliminação, portabilidade, informação sobre compartilhamento e revogação do consentimento (art. 18). Peça pelo e-mail do encarregado; respondemos em até 15 dias."],
      ],
    },
  },
  en: {
    terms: {
      title: "Terms of use",
      sections: [
        ["Your account", "Each account belongs to one person, known by their e-mail. You keep your password and your second factor (authenticator app and recovery codes) safe; purchases made with them are yours."],
        ["The line and the limits", "The line is in order of arrival, drawn among those arriving in the same interval and in the pre-queue. Each event has a per-person ticket limit. Several accounts, bots or resale to get around the line or the limits lead to the purchases involved being cancelled."],
        ["Holds and payment", "The tickets you choose are held for a few minutes; unpaid in time, they go back on sale. A confirmed payment issues the tickets, which stay in “My tickets”."],
        ["Tickets", "Each ticket has a unique code; the door accepts each code once. Do not share its QR code."],
      ],
    },
    privacy: {
      title: "Privacy notice",
      sections: [
        ["Who processes your data", "IngressoJá is the controller of the personal data processed on this platform. Data protection officer: privacidade@ingressoja.example."],
        ["What data", "E-mail; the password kept only as a hash (argon2id), never in clear; the second factor's secret and recovery codes (only as hashes); purchases and tickets; the IP address and time of each account and purchase action; a session cookie, essential to log in. Card numbers are not kept."],
        ["What for, and on what basis", "Selling and delivering tickets (performance of a contract, LGPD art. 7, V); protecting accounts and the line from fraud and bots (legitimate interest and fraud prevention, art. 7, IX, and art. 11, II, g); legal and tax obligations (art. 7, II)."],
        ["Shared with", "The payment processor, only what it needs to charge. We do not sell data."],
        ["For how long", "While the account exists and then as long as the law requires for purchase and access records (Marco Civil da Internet, art. 15: six months for access records)."],
        ["Your rights", "Confirmation and access, correction, anonymisation, blocking or deletion, portability, information about sharing, and withdrawal of consent (art. 18). Ask the data protection officer by e-mail; we answer within 15 days."],
      ],
    },
  },
};
